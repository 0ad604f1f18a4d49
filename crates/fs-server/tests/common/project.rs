//! The realistic project tree the fs tool suites (`tools_*.rs`) build in a fresh temporary
//! directory, and small helpers over it.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bastion_testkit::{Kind, ServerBuilder, temp_dir, write};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const ENV_SECRET: &str = "ENVVALUE-s3cr3t-7f3a9c";

pub const READ_TOOLS: [&str; 7] =
    ["read_file", "read_many_files", "list_directory", "file_info", "list_roots", "find_files", "search_text"];
pub const WRITE_TOOLS: [&str; 5] = ["write_file", "edit_file", "apply_patch", "create_directory", "move_path"];
pub const DESTRUCTIVE_TOOLS: [&str; 1] = ["delete_path"];

// ---------------------------------------------------------------------------------------------
// The project tree
// ---------------------------------------------------------------------------------------------

/// A valid 1x1 RGBA PNG (the bytes Python's zlib writes for the same image).
pub fn tiny_png() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    // zlib.compress(b"\x00\xff\x00\x00\xff"): one filter byte and one RGBA pixel.
    let idat = [0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff];
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", b""));
    png
}

pub const MAIN_RS: &str = "use proj::util::strings::shout;\n\nfn main() {\n    let greeting = shout(\"hello\");\n    println!(\"{greeting}\");\n}\n";

pub const LIB_RS: &str = "pub mod util;\n\n/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\npub fn compute(a: i32, b: i32) -> i32 {\n    let total = add(a, b);\n    total * 2\n}\n";

pub const STRINGS_RS: &str = "pub fn shout(s: &str) -> String {\n    s.to_uppercase()\n}\n";

pub const README: &str = "# Proj\n\nA small example project.\n\nHello world.\nHELLO again.\nhello there.\n";

pub const LATIN1: &[u8] = b"caf\xe9 cr\xe8me br\xfbl\xe9e\n";

/// A small but realistic project: sources, docs, ignored build output, a secret, assets.
pub fn make_project(base: &Path, name: &str) -> PathBuf {
    let root = base.join(name);
    std::fs::create_dir_all(&root).unwrap();
    write(root.join("README.md"), README);
    write(root.join("Cargo.toml"), "[package]\nname = \"proj\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    write(root.join(".gitignore"), "target/\n*.log\n");
    write(root.join(".env"), format!("API_KEY={ENV_SECRET}\nDATABASE_URL=postgres://u:{ENV_SECRET}@db/x\n"));
    write(root.join(".hidden/config.rs"), "// hidden config\nfn hidden() {}\n");
    write(root.join("app.log"), "log line hello\n");
    write(root.join("src/main.rs"), MAIN_RS);
    write(root.join("src/lib.rs"), LIB_RS);
    write(root.join("src/util/mod.rs"), "pub mod strings;\n");
    write(root.join("src/util/strings.rs"), STRINGS_RS);
    write(root.join("docs/guide.md"), "# Guide\n\nCall `add(a, b)` to add.\nfn is not code here.\n");
    write(root.join("target/debug/build.rs"), "fn generated() {}\n");
    write(root.join("assets/logo.png"), tiny_png());
    let mut blob = b"\x7fELF\x02\x01\x01\x00".to_vec();
    for _ in 0..4 {
        blob.extend(0u8..=255);
    }
    write(root.join("assets/blob.bin"), blob);
    write(root.join("data/latin1.txt"), LATIN1);
    root
}

/// A fresh base directory holding `proj`.
pub struct Project {
    pub _dir: TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
}

pub fn project() -> Project {
    let dir = temp_dir();
    let base = dir.path().canonicalize().unwrap();
    let root = make_project(&base, "proj");
    Project { _dir: dir, base, root }
}

pub fn sha256(data: impl AsRef<[u8]>) -> String {
    Sha256::digest(data.as_ref()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn fs(root: &Path) -> ServerBuilder {
    ServerBuilder::new(Kind::Fs).root(root)
}

pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

pub fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

pub fn paths_of(entries: &Value) -> Vec<String> {
    entries.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect()
}

/// Every path under `root` (files, directories, links), relative, sorted.
pub fn all_paths(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(&p, root, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Content of every regular file under `root` (links not followed).
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    all_paths(root)
        .into_iter()
        .filter(|rel| std::fs::symlink_metadata(root.join(rel)).is_ok_and(|m| m.file_type().is_file()))
        .map(|rel| {
            let data = std::fs::read(root.join(&rel)).unwrap();
            (rel, data)
        })
        .collect()
}
