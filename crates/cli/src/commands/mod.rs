//! One module per command: an `Args` struct (its doc comment is the help) and one `run`.

pub mod config;
pub mod demo;
pub mod journal;
pub mod manage;
pub mod role;
pub mod serve;
pub mod status;

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> ostler_core::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ostler_core::Error::Other(e.into()))?;
    println!("{text}");
    Ok(())
}
