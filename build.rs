//! Puts the commit the binary is built from into `wolkvox_exporter_build_info{revision}`:
//! `git rev-parse --short=12 HEAD` when this crate is the top of a git work tree, else the
//! environment variable `WOLKVOX_REVISION` (the Dockerfile's `REVISION` build argument:
//! its build context has no `.git`), else `unknown`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WOLKVOX_REVISION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let revision = git_revision(&dir)
        .or_else(|| std::env::var("WOLKVOX_REVISION").ok().and_then(clean))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=WOLKVOX_EXPORTER_REVISION={revision}");
}

/// The short commit id, and the files whose change means a new commit is checked out.
fn git_revision(dir: &Path) -> Option<String> {
    // A source tree unpacked inside some other repository (a distribution's packaging
    // tree, say) must not take that repository's commit.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    let revision = clean(git(dir, &["rev-parse", "--short=12", "HEAD"])?)?;
    // HEAD names the branch (or, detached, the commit itself); a commit rewrites the
    // branch's loose ref, or, when the branch is only in packed-refs, creates it: then
    // its directory is watched (not always: other branches' commits land there too).
    // Cargo reruns on every build for a path that does not exist, so only existing
    // ones are named.
    let mut watch = vec![git_path(dir, "HEAD")?];
    let branch = git(dir, &["symbolic-ref", "-q", "HEAD"]);
    if let Some(loose) = branch.and_then(|b| git_path(dir, &b)) {
        if loose.exists() {
            watch.push(loose);
        } else {
            watch.extend(loose.parent().map(Path::to_path_buf));
        }
    }
    watch.extend(git_path(dir, "packed-refs"));
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(revision)
}

/// Where git keeps `name` (worktrees keep HEAD apart and share refs).
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(git(dir, &["rev-parse", "--git-path", name])?);
    Some(if p.is_absolute() { p } else { dir.join(p) })
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_string())
}

/// A revision as a label value: one short line of printable ASCII, or nothing.
fn clean(s: String) -> Option<String> {
    let s = s.trim();
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_string())
}
