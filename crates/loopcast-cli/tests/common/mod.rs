//! Runs the built `loopcast` binary.

#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

/// Runs `loopcast ARGS` and returns its status and output.
pub fn loopcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopcast")).args(args).output().unwrap()
}

/// Runs `loopcast ARGS`, which must succeed, and parses its standard output as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = loopcast(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
