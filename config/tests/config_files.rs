//! The configuration files of `config/test_data/`: every `valid/*.toml` is accepted, and every
//! `invalid/NAME.toml` is refused with exactly the lines of `invalid/NAME.expected`.
//!
//! `TALLYMAN_REGENERATE=1 cargo test -p tallyman-config --test config_files` rewrites the
//! `.expected` files from what the code says now; read the diff before committing it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn valid_files_are_accepted() {
    let valid = files("valid", "toml");
    assert!(valid.len() >= 5, "{valid:?}");
    for path in valid {
        let text = fs::read_to_string(&path).unwrap();
        if let Err(e) = tallyman_config::parse_str(&text, &file_name(&path)) {
            panic!("{} is refused:\n{e}", path.display());
        }
        // `load` gives the same configuration as `parse_str`.
        assert_eq!(
            tallyman_config::load(&path).unwrap(),
            tallyman_config::parse_str(&text, "x").unwrap()
        );
    }
}

#[test]
fn invalid_files_give_exactly_the_expected_diagnostics() {
    let regenerate = std::env::var_os("TALLYMAN_REGENERATE").is_some();
    let invalid = files("invalid", "toml");
    assert!(invalid.len() >= 20, "{invalid:?}");
    let mut failures = Vec::new();
    for path in &invalid {
        let text = fs::read_to_string(path).unwrap();
        let name = file_name(path);
        let got = match tallyman_config::parse_str(&text, &name) {
            Ok(_) => {
                failures.push(format!("{name} is accepted"));
                continue;
            }
            Err(e) => format!("{e}\n"),
        };
        let expected_path = path.with_extension("expected");
        if regenerate {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if got != expected {
            failures.push(format!("{name}\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    // No expectation without its input.
    for expected in files("invalid", "expected") {
        assert!(
            expected.with_extension("toml").exists(),
            "{} has no .toml",
            expected.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
