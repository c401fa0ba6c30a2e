//! The revision in `wolkvox_exporter_build_info` is the commit this tree is at.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::helpers::*;

/// `wolkvox_exporter_build_info{revision}` is the commit this tree is checked out at
/// (build.rs), when the tree is a git checkout; the build argument or "unknown" else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_revision_is_the_checked_out_commit() {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let expected = match top {
        Some(t) if t.canonicalize().ok() == root().canonicalize().ok() => {
            git(&["rev-parse", "--short=12", "HEAD"]).expect("git rev-parse HEAD")
        }
        _ => option_env!("WOLKVOX_REVISION")
            .unwrap_or("unknown")
            .to_string(),
    };
    let dir = tempdir();
    let exp = Exporter::spawn(&["--demo", "--state.dir", dir.path().to_str().unwrap()]);
    let s = exp.scrape().await;
    let info = s.by("wolkvox_exporter_build_info", &[], "revision");
    assert_eq!(info, BTreeMap::from([(expected, 1.0)]));
}
