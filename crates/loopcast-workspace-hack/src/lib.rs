//! No code. This crate only asks of shared dependencies the features the test build asks
//! of them, so the server's build and the test build compile each dependency once (see
//! its Cargo.toml).
