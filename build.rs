//! One thing only: where hindsight's binaries find a shared liblsl at run time.
//!
//! When the build scripts link a current liblsl instead of the liblsl that lsl-sys bundles
//! (`scripts/get-liblsl.sh`), they name its folder in `HINDSIGHT_RPATH`: the binaries
//! and test binaries get it as their run path, so that they start from any shell, not
//! only from one with `LD_LIBRARY_PATH` set. `scripts/install.sh` names the folder it
//! installs the library to. Unset (a plain `cargo build`), nothing is added.

fn main() {
    println!("cargo:rerun-if-env-changed=HINDSIGHT_RPATH");
    if let Ok(dir) = std::env::var("HINDSIGHT_RPATH") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
