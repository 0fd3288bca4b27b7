// A Go workload with a known profile: a leaf under two parents (3:1 of
// the CPU, units drawn at random so no period aliases with sampling), and a
// goroutine that recurses 100 deep before it spins (deep goroutine
// stacks). Go keeps frame pointers; its DWARF (.debug_frame) is compressed.
// step is small enough for the compiler to inline it into leaf: an inlined
// frame under a known caller.
package main

import (
	"os"
	"strconv"
	"time"
)

var sink uint64

func step(x, i uint64) uint64 { return x*6364136223846793005 + i }

//go:noinline
func leaf(n uint64) uint64 {
	x := n
	for i := uint64(0); i < 5000; i++ {
		x = step(x, i)
	}
	return x
}

//go:noinline
func parentA(n uint64) uint64 { return leaf(n) ^ 1 }

//go:noinline
func parentB(n uint64) uint64 { return leaf(n) ^ 2 }

//go:noinline
func deep(depth int, until time.Time) uint64 {
	if depth > 0 {
		return deep(depth-1, until) + 1
	}
	var x uint64
	for time.Now().Before(until) {
		x += leaf(x)
	}
	return x
}

func main() {
	secs := 3.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			secs = v
		}
	}
	until := time.Now().Add(time.Duration(secs * float64(time.Second)))
	mode := ""
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	if mode == "deep" {
		sink = deep(100, until)
		return
	}
	x := uint64(88172645463325252)
	for time.Now().Before(until) {
		for k := 0; k < 16; k++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if x&3 != 0 {
				sink ^= parentA(x)
			} else {
				sink ^= parentB(x)
			}
		}
	}
}
