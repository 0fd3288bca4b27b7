//! A workload with a known profile, built with cargo's defaults:
//!
//!   main -> parse_phase -> churn   3/4 of the CPU
//!   main -> render_phase -> churn  1/4 of the CPU
//!
//! Units of work go to the two parents at random (3:1), so no period of
//! the work can alias with the sampling clock. Runs for argv[1] seconds.

use std::{hint::black_box, time::Instant};

#[inline(never)]
fn churn(seed: u64) -> u64 {
    let mut x = seed;
    for i in 0..5000u64 {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

#[inline(never)]
fn parse_phase(seed: u64) -> u64 {
    black_box(churn(seed)) ^ 1
}

#[inline(never)]
fn render_phase(seed: u64) -> u64 {
    black_box(churn(seed)) ^ 2
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let start = Instant::now();
    let mut x: u64 = 88172645463325252;
    let mut acc = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            acc ^= if x & 3 != 0 { parse_phase(x) } else { render_phase(x) };
        }
    }
    black_box(acc);
}
