//! FORMAT.md and the code agree: its examples parse, and a chunk can be read
//! the way it says, without this crate.

use std::fs;
use std::path::Path;
use std::process::Command;

use ostler_repo::{RepoConfig, StreamRef};

use crate::common::{hash_hex, new_repo, sql_like_bytes};

const FORMAT_MD: &str = include_str!("../../FORMAT.md");

/// The first ```json block after `heading`.
fn json_block_after(heading: &str) -> &'static str {
    let section = &FORMAT_MD[FORMAT_MD.find(heading).expect("heading in FORMAT.md")..];
    let start = section.find("```json\n").expect("json block") + "```json\n".len();
    let len = section[start..].find("```").expect("end of block");
    &section[start..start + len]
}

#[test]
fn the_documented_config_is_what_init_writes() {
    let documented: RepoConfig = serde_json::from_str(json_block_after("## config.json"))
        .expect("FORMAT.md's config.json example parses with deny_unknown_fields");
    let (_dir, repo) = new_repo();
    let on_disk: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.path().join("config.json")).unwrap()).unwrap();
    let documented_json = serde_json::to_value(&documented).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&on_disk), keys(&documented_json));
    let actual = repo.config();
    assert_eq!(actual.format, documented.format);
    assert_eq!(actual.version, documented.version);
    assert_eq!(actual.chunker, documented.chunker);
    assert_eq!(actual.hash, documented.hash);
    assert_eq!(actual.compression, documented.compression);
}

#[test]
fn the_documented_stream_reference_parses() {
    let _: StreamRef = serde_json::from_str(json_block_after("## Streams")).unwrap();
}

#[test]
fn the_documented_layout_exists() {
    let (_dir, repo) = new_repo();
    let root = repo.path();
    for dir in [
        "chunks",
        "chunks/00",
        "chunks/a7",
        "chunks/ff",
        "files",
        "tmp",
    ] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    assert!(root.join("lock").is_file());
    assert_eq!(fs::read_dir(root.join("chunks")).unwrap().count(), 256);
}

#[test]
fn a_chunk_file_reads_as_documented_without_this_crate() {
    let (_dir, repo) = new_repo();
    let data = sql_like_bytes(80, 900_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    let mut joined = Vec::new();
    for chunk in &stream.chunks {
        let path = repo
            .path()
            .join("chunks")
            .join(&chunk.id[..2])
            .join(&chunk.id);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"OSTC");
        assert_eq!(bytes[4], 1);
        let frame = &bytes[5..];
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(frame).unwrap(),
            Some(u64::from(chunk.len)),
            "frame header records the content size"
        );
        let plain = zstd::decode_all(frame).unwrap();
        assert_eq!(hash_hex(&plain), chunk.id);
        assert_eq!(plain.len(), chunk.len as usize);
        joined.extend_from_slice(&plain);
    }
    assert_eq!(joined.len() as u64, stream.size);
    assert_eq!(hash_hex(&joined), stream.hash);
    assert_eq!(joined, data);
}

#[test]
fn the_shell_recipe_decodes_a_chunk_when_zstd_is_installed() {
    let (_dir, repo) = new_repo();
    let (stream, _) = repo.write_bytes(&sql_like_bytes(81, 300_000)).unwrap();
    let id = &stream.chunks[0].id;
    let out = Command::new("sh")
        .arg("-c")
        .arg("tail -c +6 \"chunks/${1%${1#??}}/$1\" | zstd -dc")
        .arg("sh")
        .arg(id)
        .current_dir(repo.path())
        .output();
    match out {
        Ok(out) if out.status.success() => assert_eq!(&hash_hex(&out.stdout), id),
        _ if !Path::new("/usr/bin/zstd").exists() && !Path::new("/bin/zstd").exists() => {
            eprintln!("zstd not installed: shell recipe not checked");
        }
        other => panic!("recipe failed: {other:?}"),
    }
}
