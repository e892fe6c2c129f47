//! Docker packaging checked without a Docker engine: the Dockerfile's build
//! and run settings against docs/install.md and the binary, the compose file against
//! its Mosquitto config, and that config against a real Mosquitto.
//! (scripts/check-packaging.sh adds hadolint, `docker-compose config` and a
//! release build of the Dockerfile's own build command.)

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_yaml_ng::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A Dockerfile's instructions: continuation lines joined, comments and
/// parser directives dropped, as (KEYWORD, arguments).
pub fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// The `ENV` settings of a Dockerfile, in order.
pub fn env_of(text: &str) -> Vec<(String, String)> {
    instructions(text)
        .into_iter()
        .filter(|(k, _)| k == "ENV")
        .flat_map(|(_, args)| {
            args.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("ENV KEY=VALUE");
                    (k.to_owned(), v.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn one(ins: &[(String, String)], keyword: &str) -> Vec<String> {
    ins.iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.clone())
        .collect()
}

#[test]
fn the_dockerfile_builds_with_the_readme_command_and_runs_unprivileged() {
    let text = read("docker/Dockerfile");
    let ins = instructions(&text);
    let from = one(&ins, "FROM");
    assert_eq!(
        from,
        [
            "${BUILD_IMAGE} AS build",
            "scratch AS prebuilt",
            "${BINARY} AS binary",
            "${RUNTIME_IMAGE} AS runtime"
        ],
        "the base images are build arguments; the runtime stage takes the binary from `build` or `prebuilt`"
    );
    let args: BTreeMap<_, _> = one(&ins, "ARG")
        .into_iter()
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let builder = &args["BUILD_IMAGE"];
    let builder_rust = builder
        .strip_prefix("rust:")
        .and_then(|v| v.strip_suffix("-slim-bookworm"))
        .unwrap_or_else(|| panic!("builder pinned to a Rust release on Debian 12: {builder}"));
    let msrv = env!("CARGO_PKG_RUST_VERSION");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(
        version(builder_rust) >= version(msrv),
        "the builder's Rust {builder_rust} is at least rust-version {msrv}"
    );
    assert!(
        args["RUNTIME_IMAGE"].starts_with("gcr.io/distroless/cc-debian12"),
        "final stage on Debian 12 like the builder (same glibc): {}",
        args["RUNTIME_IMAGE"]
    );
    assert_eq!(args["BINARY"], "build", "a plain `docker build` compiles");
    assert!(text.contains("COPY dist/${TARGETARCH}/ /out/"));
    assert!(text.contains("COPY --from=binary /out/print2mqtt /usr/local/bin/print2mqtt"));
    let run = one(&ins, "RUN");
    assert_eq!(run.len(), 1, "{run:?}");
    let build = run[0].split("&&").next().unwrap().trim();
    assert_eq!(build, "cargo build --release --locked");
    let readme = read("docs/install.md");
    assert!(
        readme.contains(&format!("\n{build}\n")),
        "docs/install.md shows the Dockerfile's build command `{build}`"
    );
    let docker_build = "docker build -f docker/Dockerfile -t print2mqtt .";
    assert!(text.contains(docker_build) && readme.contains(docker_build));
    assert!(readme.contains("docker compose -f docker/compose.yaml up -d"));

    let user = one(&ins, "USER");
    assert_eq!(user, ["65532:65532"], "distroless nonroot, numeric");
    let env: BTreeMap<_, _> = env_of(&text).into_iter().collect();
    assert_eq!(env["PRINT2MQTT_STORAGE__DATA_DIR"], "/data");
    assert_eq!(one(&ins, "VOLUME"), ["[\"/data\"]"]);
    assert!(
        text.contains("COPY --from=binary --chown=65532:65532 /out/data /data"),
        "the volume's mount point belongs to the user that writes the outbox"
    );
    let port = env["PRINT2MQTT_HTTP__LISTEN"].rsplit(':').next().unwrap();
    assert_eq!(one(&ins, "EXPOSE"), [port]);
    assert_eq!(
        one(&ins, "WORKDIR"),
        ["/src", "/"],
        "/config/print2mqtt.toml is found"
    );
    let health = one(&ins, "HEALTHCHECK");
    assert!(
        health[0].ends_with(r#"CMD ["/usr/local/bin/print2mqtt", "healthcheck"]"#),
        "{health:?}"
    );
    assert_eq!(
        one(&ins, "ENTRYPOINT"),
        [r#"["/usr/local/bin/print2mqtt"]"#]
    );
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

/// The container's environment (both images) is a valid configuration, and
/// `check-config` shows it took effect.
#[test]
fn the_image_environments_are_valid_configurations() {
    for (file, expect) in [
        (
            "docker/Dockerfile",
            vec!["listen = \"0.0.0.0:8080\"", "data_dir = \"/data\""],
        ),
        (
            "docker/homeassistant-addon/Dockerfile",
            vec!["ingress_listen = \"0.0.0.0:8099\"", "data_dir = \"/data\""],
        ),
    ] {
        let mut cmd = bin();
        cmd.arg("check-config");
        for (k, v) in env_of(&read(file)) {
            cmd.env(k, v);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in expect {
            assert!(stdout.contains(line), "{file}: {line} not in {stdout}");
        }
    }
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `listener <port>` of a Mosquitto config.
fn mosquitto_port(conf: &str) -> u16 {
    conf.lines()
        .find_map(|l| l.strip_prefix("listener "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("a listener line")
}

#[test]
fn the_compose_file_wires_the_bridge_to_its_mosquitto() {
    let compose = yaml("docker/compose.yaml");
    let services = &compose["services"];
    let bridge = &services["print2mqtt"];
    let mosquitto = &services["mosquitto"];
    assert!(
        mosquitto["image"]
            .as_str()
            .unwrap()
            .starts_with("eclipse-mosquitto:2")
    );

    let build = &bridge["build"];
    let context = repo("docker").join(build["context"].as_str().unwrap());
    assert!(
        context
            .join(build["dockerfile"].as_str().unwrap())
            .is_file(),
        "the build's dockerfile exists relative to its context"
    );
    assert_eq!(
        context.canonicalize().unwrap(),
        repo("").canonicalize().unwrap()
    );

    let url = bridge["environment"]["PRINT2MQTT_MQTT__URL"]
        .as_str()
        .unwrap();
    let conf_mount = mosquitto["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .find(|v| v.contains("mosquitto.conf"))
        .unwrap();
    let conf_file = conf_mount.split(':').next().unwrap();
    let conf = std::fs::read_to_string(repo("docker").join(conf_file)).unwrap();
    assert_eq!(
        url,
        format!("mqtt://mosquitto:{}", mosquitto_port(&conf)),
        "the bridge names the mosquitto service and its listener port"
    );
    assert_eq!(
        bridge["depends_on"]["mosquitto"]["condition"].as_str(),
        Some("service_healthy")
    );
    let volumes: Vec<_> = bridge["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        volumes.iter().any(|v| v == "print2mqtt-data:/data"),
        "{volumes:?}"
    );
    assert!(compose["volumes"]["print2mqtt-data"].is_null());
    assert!(compose["volumes"]["mosquitto-data"].is_null());
    let ports = bridge["ports"].as_sequence().unwrap();
    assert_eq!(ports[0].as_str(), Some("8080:8080"));

    // Every environment variable of the service is a valid configuration.
    let mut cmd = bin();
    cmd.arg("check-config");
    for (k, v) in bridge["environment"].as_mapping().unwrap() {
        let v = v
            .as_str()
            .unwrap()
            .replace("${PRINT2MQTT_AUTH__SECRET:-}", "");
        let v = v.replace("${RUST_LOG:-info}", "info");
        cmd.env(k.as_str().unwrap(), v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docker/mosquitto/mosquitto.conf, with only its port and data path moved,
/// runs a real Mosquitto that keeps retained messages across a restart.
#[tokio::test]
async fn the_compose_mosquitto_config_runs_a_real_mosquitto() {
    let conf = read("docker/mosquitto/mosquitto.conf");
    let dir = tempfile::tempdir().unwrap();
    // Mosquitto started as root drops to its own user before saving.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_port();
    let conf = conf
        .replace("listener 1883", &format!("listener {port} 127.0.0.1"))
        .replace(
            "persistence_location /mosquitto/data/",
            &format!("persistence_location {}/", dir.path().display()),
        )
        .replace("log_dest stdout", "log_dest none");
    let path = dir.path().join("mosquitto.conf");
    std::fs::write(&path, conf).unwrap();
    let start = || {
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = ([127, 0, 0, 1], port).into();
        wait_until("mosquitto to listen", || {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100))
                .is_ok()
        });
        child
    };
    let mut child = start();
    let s = Subscriber::new(port, "compose-check/#").await;
    s.publish("compose-check/kept", "yes", true).await;
    wait_retained(port, "compose-check/kept", "yes").await;
    drop(s);
    // A graceful stop saves the retained message (persistence true).
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let mut child = start();
    wait_retained(port, "compose-check/kept", "yes").await;
    let _ = child.kill();
    let _ = child.wait();
}

fn mosquitto_path() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// Runs a command off the async runtime (the bridge under test keeps
/// running on it) and returns its output.
pub async fn output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap()
}

/// `print2mqtt healthcheck`, the image's HEALTHCHECK, exits 0 while the
/// bridge answers /healthz and 1 when nothing does.
#[tokio::test]
async fn healthcheck_follows_the_bridge() {
    let broker = Mosquitto::start();
    let bridge = print2mqtt::app::start(config(&broker.url(), SECRET))
        .await
        .unwrap();
    let listen = bridge.http_addr().to_string();
    let mut cmd = bin();
    cmd.arg("healthcheck")
        .env("PRINT2MQTT_HTTP__LISTEN", &listen)
        .env("PRINT2MQTT_MQTT__URL", broker.url());
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bridge.shutdown().await;

    let mut cmd = bin();
    cmd.arg("healthcheck")
        .env("PRINT2MQTT_HTTP__LISTEN", &listen)
        .env("PRINT2MQTT_MQTT__URL", broker.url());
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("unhealthy: http://{listen}/healthz")),
        "{stderr}"
    );
}

/// The release workflow copies binaries laid out as the Dockerfile's
/// `prebuilt` stage reads them into its runtime stage, for both
/// architectures; CI runs `.ci/run` in Debian 12.
#[test]
fn the_workflows_build_what_the_dockerfile_expects() {
    let release = read(".github/workflows/release.yml");
    let workflow = yaml(".github/workflows/release.yml");
    assert_eq!(workflow["on"]["push"]["tags"][0].as_str(), Some("v*"));
    let jobs = &workflow["jobs"];
    let arches: Vec<_> = jobs["binary"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "Docker's TARGETARCH names");
    assert!(release.contains("\"dist/${{ matrix.arch }}/print2mqtt\""));
    assert!(release.contains("install -d -m 0755 \"dist/${{ matrix.arch }}/data\""));
    assert!(release.contains("cargo build --release --locked"));
    assert_eq!(
        jobs["binary"]["container"].as_str(),
        Some("rust:1.95-bookworm"),
        "Debian 12's glibc, like the runtime image"
    );
    let push = jobs["images"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action"))
        })
        .expect("a build-push step");
    let with = &push["with"];
    assert_eq!(with["file"].as_str(), Some("docker/Dockerfile"));
    assert_eq!(with["target"].as_str(), Some("runtime"));
    assert_eq!(with["build-args"].as_str(), Some("BINARY=prebuilt"));
    assert_eq!(with["platforms"].as_str(), Some("linux/amd64,linux/arm64"));

    let ci = yaml(".github/workflows/ci.yml");
    let steps = ci["jobs"]["ci"]["steps"].as_sequence().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["run"].as_str() == Some("bash .ci/run")),
        "CI runs .ci/run"
    );
    assert!(read(".ci/run").contains("bash scripts/check-workflows.sh"));
}
