//! The integration tests, one crate: a module per area, all run against the
//! real binary (`CARGO_BIN_EXE_digest`) and real servers on loopback.

mod support;

mod cli;
mod dkim;
mod edition;
mod editor;
mod embed;
mod fuzz;
mod hardening;
mod layers;
mod list_health;
mod postgres;
mod send;
mod service;
mod transformer;
