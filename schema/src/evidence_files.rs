//! The content-addressed evidence folder: each file is stored once under its sha256
//! (`ab/abcdef…`), written to a temporary name first and renamed, so a half-written file never
//! carries a real name.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rectify_engine::EvidenceRef;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Largest evidence file accepted.
pub const MAX_EVIDENCE_BYTES: u64 = 512 * 1024 * 1024;

/// Where a file with this hash lives in the evidence folder.
pub fn path_for(dir: &Path, sha256: &str) -> PathBuf {
    let prefix = sha256.get(..2).unwrap_or("00");
    dir.join(prefix).join(sha256)
}

/// Checks that every file can be read as evidence, before any is copied.
pub fn check_readable(files: &[PathBuf]) -> Result<(), StoreError> {
    for f in files {
        check_one(f)?;
        File::open(f).map_err(|e| {
            StoreError::Evidence(format!("cannot open evidence file {}: {e}", f.display()))
        })?;
    }
    Ok(())
}

/// A regular file within the size limit.
fn check_one(src: &Path) -> Result<fs::Metadata, StoreError> {
    let meta = fs::metadata(src).map_err(|e| {
        StoreError::Evidence(format!(
            "cannot read evidence file {}: {e}; check the path",
            src.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(StoreError::Evidence(format!(
            "evidence {} is not a regular file; give a file",
            src.display()
        )));
    }
    if meta.len() > MAX_EVIDENCE_BYTES {
        return Err(StoreError::Evidence(format!(
            "evidence file {} is {} bytes; the limit is {MAX_EVIDENCE_BYTES}",
            src.display(),
            meta.len()
        )));
    }
    Ok(meta)
}

/// Copies `src` into the evidence folder and returns its record. Only the file's own name (never
/// a path) is kept as the original name; nothing is ever written outside `dir`.
pub fn store(dir: &Path, src: &Path) -> Result<EvidenceRef, StoreError> {
    check_one(src)?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "evidence".to_string());
    let name: String = name.chars().filter(|c| !c.is_control()).take(255).collect();

    fs::create_dir_all(dir).map_err(|e| unwritable(dir, e))?;
    let tmp = tempfile_in(dir)?;
    let mut input = File::open(src).map_err(|e| {
        StoreError::Evidence(format!("cannot open evidence file {}: {e}", src.display()))
    })?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    {
        let mut out = File::create(&tmp).map_err(|e| unwritable(dir, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf).map_err(|e| {
                StoreError::Evidence(format!("cannot read evidence file {}: {e}", src.display()))
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            out.write_all(&buf[..n]).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                unwritable(dir, e)
            })?;
        }
        out.sync_all().map_err(|e| unwritable(dir, e))?;
    }
    let sha256 = hex::encode(hasher.finalize());
    let dest = path_for(dir, &sha256);
    let result = (|| {
        fs::create_dir_all(dest.parent().unwrap_or(dir))?;
        if dest.exists() {
            fs::remove_file(&tmp)
        } else {
            fs::rename(&tmp, &dest)
        }
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(unwritable(dir, e));
    }
    Ok(EvidenceRef { sha256, size, name })
}

fn tempfile_in(dir: &Path) -> Result<PathBuf, StoreError> {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(dir.join(format!(".incoming-{pid}-{nanos}")))
}

fn unwritable(dir: &Path, e: std::io::Error) -> StoreError {
    StoreError::Evidence(format!(
        "cannot write to the evidence folder {}: {e}; check that it exists and is writable, or set evidence_dir in the config",
        dir.display()
    ))
}

/// Re-hashes a stored evidence file; `None` when it is missing.
pub fn rehash(dir: &Path, sha256: &str) -> Option<String> {
    let mut f = File::open(path_for(dir, sha256)).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(hex::encode(hasher.finalize()))
}
