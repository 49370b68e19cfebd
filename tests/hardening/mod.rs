//! Hostile input and careless operators, through the real binary: script
//! links, feeds that point at internal addresses, oversized titles, deeply
//! nested pages, a locked database under `digest serve`, commands in the
//! wrong folder, CSV round trips, absurd settings, passwords with special
//! characters, read-only databases and feed items from 1900.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::{
    chromium, digest, http, reply, text, HttpServer, Reply, Serve, Server as Smtp, CHROMIUM_FLAGS,
};

mod database;
mod input;
mod settings;

fn ok(body: impl Into<Vec<u8>>) -> Reply {
    reply("200 OK", &[], body)
}

fn run(dir: &Path, args: &[&str]) -> Output {
    digest(dir).args(args).output().unwrap()
}

fn succeeds(dir: &Path, args: &[&str]) -> Output {
    support::succeeded(run(dir, args), args)
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}
