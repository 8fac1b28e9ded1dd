//! `[[jobs]]` in `ostler.toml`.
