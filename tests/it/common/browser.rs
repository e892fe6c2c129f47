//! Headless Chromium over WebDriver (Debian's `chromium` and
//! `chromium-driver`, driven with fantoccini), for the browser tests.

use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use super::{free_port, wait_until};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What is missing to run a browser test, if anything.
pub fn missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|tool| !std::path::Path::new(tool).exists())
        .map(|tool| {
            format!(
                "{tool} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
            )
        })
}

/// True under CI (`CI` set, as GitHub Actions and .ci/run do), where a test
/// that cannot run must fail.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Chromium session; chromedriver and the profile go when it is dropped.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
    _log: tempfile::NamedTempFile,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session with
    /// the usual flags plus `args`; `caps` are added to the capabilities.
    pub async fn start(args: &[String], caps: Value) -> Browser {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("chromedriver starts"),
        );
        wait_until("chromedriver listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let mut flags: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .map(String::from)
        .to_vec();
        flags.push(format!("--user-data-dir={}", profile.path().display()));
        flags.extend(args.iter().cloned());
        let mut all = json!({
            "goog:chromeOptions": { "binary": CHROMIUM, "args": flags },
        });
        if let (Some(all), Some(extra)) = (all.as_object_mut(), caps.as_object()) {
            all.extend(extra.clone());
        }
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(all.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
            _log: log,
        }
    }
}
