//! The output file of `backfill`, written atomically: `OUTPUT.tmp` and one unlinked
//! temporary file per family while the run goes through time, joined and renamed to
//! `OUTPUT` at the end, and removed if the run does not finish.

use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use super::openmetrics::{FAMILY_COUNT, family_header, output_order};

/// `OUTPUT.tmp` with the first family, plus one unlinked temporary file per other
/// family; [`Output::finish`] joins them and renames. Dropped unfinished, it removes
/// `OUTPUT.tmp`: an interrupted run leaves no half file.
pub(super) struct Output {
    path: PathBuf,
    tmp: PathBuf,
    pub(super) writers: Vec<BufWriter<File>>,
    /// Temporary files that could not be unlinked while open (not on Unix).
    leftovers: Vec<PathBuf>,
    finished: bool,
}

/// `OUTPUT.tmp`, the file written before the rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

impl Output {
    pub(super) fn create(path: &Path) -> io::Result<Output> {
        let Some(name) = path.file_name() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ));
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tmp_path(path);
        let first = output_order()[0];
        let mut writers = Vec::with_capacity(FAMILY_COUNT);
        let mut leftovers = Vec::new();
        let mut made = Output {
            path: path.to_path_buf(),
            tmp: tmp.clone(),
            writers: Vec::new(),
            leftovers: Vec::new(),
            finished: false,
        };
        for i in 0..FAMILY_COUNT {
            let file = if i == first {
                let mut f = File::create(&tmp)?;
                f.write_all(family_header(i).as_bytes())?;
                f
            } else {
                let mut part_name = std::ffi::OsString::from(".");
                part_name.push(name);
                part_name.push(format!(".family{i}.tmp"));
                let part = dir.join(part_name);
                let f = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&part)?;
                // Unlinked while open (Unix): the space comes back however the run ends.
                if fs::remove_file(&part).is_err() {
                    leftovers.push(part);
                }
                f
            };
            writers.push(BufWriter::with_capacity(256 * 1024, file));
        }
        made.writers = writers;
        made.leftovers = leftovers;
        Ok(made)
    }

    /// Joins the families into `OUTPUT.tmp`, ends it with `# EOF`, syncs and renames it
    /// to `OUTPUT`. Returns the size in bytes.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        let order = output_order();
        let mut writers: Vec<Option<BufWriter<File>>> = std::mem::take(&mut self.writers)
            .into_iter()
            .map(Some)
            .collect();
        let mut main = writers[order[0]]
            .take()
            .ok_or_else(|| io::Error::other("output writer missing"))?;
        for &i in &order[1..] {
            let w = writers[i]
                .take()
                .ok_or_else(|| io::Error::other("family writer missing"))?;
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.rewind()?;
            main.write_all(family_header(i).as_bytes())?;
            io::copy(&mut f, &mut main)?;
        }
        main.write_all(b"# EOF\n")?;
        let file = main.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        self.finished = true;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            // The rename is durable once the directory entry is; failing that is harmless.
            let _ = d.sync_all();
        }
        Ok(fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        for p in &self.leftovers {
            let _ = fs::remove_file(p);
        }
        if !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::openmetrics::F_ROWS;

    #[test]
    fn output_is_renamed_only_when_finished() {
        let dir =
            std::env::temp_dir().join(format!("wolkvox-backfill-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.om");
        {
            let mut o = Output::create(&path).unwrap();
            writeln!(o.writers[F_ROWS], "x").unwrap();
            assert!(tmp_path(&path).exists());
            // Dropped unfinished.
        }
        assert!(!tmp_path(&path).exists());
        assert!(!path.exists());
        let mut o = Output::create(&path).unwrap();
        writeln!(
            o.writers[F_ROWS],
            "wolkvox_ivr_rows_total{{operation=\"a\"}} 0 1"
        )
        .unwrap();
        let n = o.finish().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(n, text.len() as u64);
        assert!(text.starts_with("# HELP wolkvox_ivr_interaction_duration_seconds "));
        assert!(text.contains("# TYPE wolkvox_ivr_rows counter\nwolkvox_ivr_rows_total{operation=\"a\"} 0 1\n# HELP wolkvox_ivr_rows_invalid"));
        assert!(text.ends_with("# EOF\n"));
        assert!(!tmp_path(&path).exists());
        // Only the output is left in the directory: the family files were unlinked.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.om")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
