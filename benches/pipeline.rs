//! `cargo bench`: the same measurements as `hindsight bench` (SPEC section 10), printed.
//! Set HINDSIGHT_BENCH_QUICK=1 for a short run.

fn main() {
    let args = hindsight::cli::BenchArgs {
        quick: std::env::var_os("HINDSIGHT_BENCH_QUICK").is_some(),
        dir: None,
        no_ffmpeg: false,
        soak: None,
        process: false,
        viewers: 0,
        scheduling: hindsight::cli::Scheduling::Defaults,
        audio: false,
    };
    if let Err(e) = hindsight::bench::run(&args) {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}
