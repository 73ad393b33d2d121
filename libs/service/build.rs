//! Records the commit the binaries are built from, for `--version` and
//! `switchboard_build_info`: `SWITCHBOARD_GIT_COMMIT` when set (container builds pass it as a
//! build argument, since the image's build context has no `.git`), else `git rev-parse`, else
//! `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SWITCHBOARD_GIT_COMMIT");
    // HEAD's reflog changes on every commit and checkout, so the recorded commit follows them.
    println!("cargo:rerun-if-changed=../../.git/logs/HEAD");
    let commit = std::env::var("SWITCHBOARD_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SWITCHBOARD_BUILD_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}
