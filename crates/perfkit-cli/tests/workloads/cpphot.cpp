// A C++ workload with a known profile, for builds such as
// `g++ -O2 -g -fuse-ld=lld`: three hot member functions under their own
// parents, 3:2:1 of the CPU (units drawn at random, so no period of the
// work aliases with the sampling clock). Runs for argv[1] seconds.
#include <chrono>
#include <cstdint>
#include <cstdlib>

namespace work {

static volatile std::uint64_t sink;

struct Parser {
    __attribute__((noinline)) std::uint64_t tokenize(std::uint64_t x) const;
};
struct Renderer {
    __attribute__((noinline)) std::uint64_t rasterize(std::uint64_t x) const;
};
struct Hasher {
    __attribute__((noinline)) std::uint64_t mix(std::uint64_t x) const;
};

static std::uint64_t spin(std::uint64_t x) {
    for (std::uint64_t i = 0; i < 5000; i++) {
        x = x * 6364136223846793005ULL + i;
        sink = x;
    }
    return x;
}

std::uint64_t Parser::tokenize(std::uint64_t x) const { return spin(x) ^ 1; }
std::uint64_t Renderer::rasterize(std::uint64_t x) const { return spin(x) ^ 2; }
std::uint64_t Hasher::mix(std::uint64_t x) const { return spin(x) ^ 3; }

__attribute__((noinline)) std::uint64_t parse_request(std::uint64_t x) { return Parser{}.tokenize(x) + 1; }
__attribute__((noinline)) std::uint64_t draw_frame(std::uint64_t x) { return Renderer{}.rasterize(x) + 1; }
__attribute__((noinline)) std::uint64_t digest(std::uint64_t x) { return Hasher{}.mix(x) + 1; }

}  // namespace work

int main(int argc, char **argv) {
    double secs = argc > 1 ? std::atof(argv[1]) : 3.0;
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(secs);
    std::uint64_t x = 88172645463325252ULL, acc = 0;
    while (std::chrono::steady_clock::now() < end) {
        for (int k = 0; k < 16; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            switch (x % 6) {
                case 0: case 1: case 2: acc ^= work::parse_request(x); break;
                case 3: case 4: acc ^= work::draw_frame(x); break;
                default: acc ^= work::digest(x); break;
            }
        }
    }
    work::sink = acc;
    return 0;
}
