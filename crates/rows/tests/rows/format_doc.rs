//! FORMAT.md's examples are what the writers produce, byte for byte, so the document
//! someone restores from without ostler cannot drift from the code.

use ostler_rows::{content_hash, DeltaWriter, KeyPart, Row, RowWriter};

const FORMAT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md"));

/// The ```hex blocks of FORMAT.md, decoded; `#` starts a comment.
fn hex_blocks() -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in FORMAT.lines() {
        match (&mut current, line.trim()) {
            (None, "```hex") => current = Some(String::new()),
            (Some(hex), "```") => {
                blocks.push(decode(hex));
                current = None;
            }
            (Some(hex), text) => {
                let code = text.split('#').next().unwrap_or_default();
                hex.extend(code.chars().filter(|c| !c.is_whitespace()));
            }
            (None, _) => {}
        }
    }
    blocks
}

fn decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex in FORMAT.md"))
        .collect()
}

#[test]
fn format_examples_are_what_the_writers_write() {
    let blocks = hex_blocks();
    assert_eq!(blocks.len(), 2, "FORMAT.md should have two ```hex examples");

    let mut rows = RowWriter::new(Vec::new());
    rows.write(&[KeyPart::Int(42)], b"hello").unwrap();
    assert_eq!(rows.finish().unwrap(), blocks[0], "rows example");

    let mut delta = DeltaWriter::new(Vec::new());
    delta
        .upsert(&[KeyPart::from("ab"), KeyPart::Int(-3)], b"hi")
        .unwrap();
    delta.delete(&[KeyPart::from("b")]).unwrap();
    assert_eq!(delta.finish().unwrap(), blocks[1], "delta example");
}

#[test]
fn format_content_hashes_are_what_the_code_computes() {
    let (_, one) = content_hash([Ok(Row::new(vec![KeyPart::Int(42)], "hello"))]).unwrap();
    assert!(
        FORMAT.contains(&format!("`{one}`")),
        "{one} not in FORMAT.md"
    );
    let (_, empty) = content_hash(std::iter::empty()).unwrap();
    assert!(
        FORMAT.contains(&format!("`{empty}`")),
        "{empty} not in FORMAT.md"
    );
}
