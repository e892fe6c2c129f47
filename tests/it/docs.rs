//! The docs are part of the contract: every relative link in README.md,
//! ARCHITECTURE.md, CHANGELOG.md and docs/*.md leads to a file that exists
//! (and, for a `#anchor`, to a heading in it), and docs/configuration.md
//! documents exactly the keys of the config struct, with their defaults and
//! environment variables. Module docs in src/ cite these pages, and each
//! citation leads to a page (and heading) that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use print2mqtt::config::{Config, Printer};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md, ARCHITECTURE.md, CHANGELOG.md and every page in docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(|f| repo(f))
        .collect();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ is readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// The lines of a Markdown text outside fenced code blocks, with their
/// line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// A line without its inline code spans (`like this`).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The targets of the inline links and images `[text](target)` of a text.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            out.push((n, target.to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces
/// become `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown file offers, repeated headings numbered as
/// GitHub numbers them (`name`, `name-1`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..].replace('`', ""));
        let n = seen.entry(base.clone()).or_default();
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// What is wrong with each relative link of `file`.
fn broken_links(file: &Path) -> Vec<String> {
    let text = read(file);
    let dir = file.parent().expect("a file has a folder");
    let mut out = Vec::new();
    for (line, target) in links(&text) {
        if is_external(&target) {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        let at = format!("{}:{line}: `{target}`", file.display());
        if path.starts_with('/') {
            out.push(format!("{at}: absolute path; use a relative one"));
            continue;
        }
        if !resolved.exists() {
            out.push(format!("{at}: {} does not exist", resolved.display()));
            continue;
        }
        if !anchor.is_empty()
            && resolved.extension().is_some_and(|x| x == "md")
            && !anchors(&read(&resolved)).contains(anchor)
        {
            out.push(format!(
                "{at}: no heading with anchor #{anchor} in {}",
                resolved.display()
            ));
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let files = doc_files();
    assert!(
        files.iter().any(|f| f.ends_with("docs/configuration.md")),
        "docs/ holds the pages"
    );
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_finds_what_is_broken() {
    let text = "# Top\n\n## A `b` c\n\n## A b c\n\n```\n[x](nowhere.md)\n```\n\
                see [a](#a-b-c-1), `[no](code.md)` and [ext](https://example.org) \
                and ![img](pic.png \"title\")\n";
    assert_eq!(
        anchors(text),
        ["top", "a-b-c", "a-b-c-1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let targets: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(targets, ["#a-b-c-1", "https://example.org", "pic.png"]);

    let dir = std::env::temp_dir().join(format!("print2mqtt-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "# Page\n\n[ok](#page) [self](page.md#page) [gone](missing.md) [bad](#nope) [far](page.md#nope)\n",
    )
    .unwrap();
    let broken = broken_links(&page);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].contains("missing.md") && broken[0].contains("does not exist"));
    assert!(broken[1].contains("#nope") && broken[2].contains("#nope"));
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("src/ is readable").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The `docs/<page>.md` and `docs/<page>.md#anchor` citations in a text.
fn citations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("docs/") {
        let cited: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "/-_.#".contains(*c))
            .collect();
        let cited = cited.trim_end_matches('.').to_owned();
        if cited.contains(".md") {
            out.push(cited.clone());
        }
        rest = &rest[at + cited.len().max(5)..];
    }
    out
}

#[test]
fn module_docs_cite_pages_that_exist() {
    let mut files = Vec::new();
    rust_files(&repo("src"), &mut files);
    let mut wrong = Vec::new();
    let mut cited = 0;
    for file in &files {
        let text = read(file);
        if text.contains("DESIGN.md") {
            wrong.push(format!(
                "{}: cites DESIGN.md, which is not in the repository; cite a docs/ page",
                file.display()
            ));
        }
        for citation in citations(&text) {
            cited += 1;
            let (page, anchor) = citation.split_once('#').unwrap_or((citation.as_str(), ""));
            let path = repo(page);
            if !path.is_file() {
                wrong.push(format!("{}: `{citation}`: no such page", file.display()));
            } else if !anchor.is_empty() && !anchors(&read(&path)).contains(anchor) {
                wrong.push(format!("{}: `{citation}`: no such heading", file.display()));
            }
        }
    }
    assert!(cited > 0, "the module docs cite the docs/ pages");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every leaf of the config tree as a dotted key (`http.listen`,
/// `printers."<id>".alias`) with its default value.
fn config_keys() -> BTreeMap<String, Value> {
    let mut config = Config::default();
    config
        .printers
        .insert("<id>".to_owned(), Printer::default());
    let value = serde_json::to_value(&config).expect("the config serializes");
    let mut out = BTreeMap::new();
    flatten("", &value, &mut out);
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = match prefix {
                    "" => k.clone(),
                    "printers" => format!("printers.\"{k}\""),
                    _ => format!("{prefix}.{k}"),
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// One row of the page's key tables.
#[derive(Debug)]
struct Row {
    line: usize,
    key: String,
    default: String,
    env: String,
}

/// The rows of the tables under `## Keys` in docs/configuration.md whose
/// first cell is a key.
fn documented_keys(page: &str) -> Vec<Row> {
    let mut in_keys = false;
    let mut rows = Vec::new();
    for (line, text) in prose_lines(page) {
        if let Some(heading) = text.strip_prefix("## ") {
            in_keys = heading.trim() == "Keys";
            continue;
        }
        if !in_keys || !text.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = text.trim_matches('|').split('|').map(str::trim).collect();
        let code = |cell: &str| cell.trim_matches('`').to_owned();
        rows.push(Row {
            line,
            key: code(cells[0]),
            default: cells.get(1).map(|c| code(c)).unwrap_or_default(),
            env: cells.get(2).map(|c| code(c)).unwrap_or_default(),
        });
    }
    rows
}

/// How a default is written on the page: text as is (`""` when empty),
/// anything else as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `http.max_body_bytes` -> `PRINT2MQTT_HTTP__MAX_BODY_BYTES`.
fn env_var(key: &str) -> String {
    format!(
        "PRINT2MQTT_{}",
        key.replace('"', "").replace('.', "__").to_uppercase()
    )
}

/// Every disagreement between the struct's keys and the page's rows.
fn mismatches(keys: &BTreeMap<String, Value>, rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for row in rows {
        if !seen.insert(row.key.as_str()) {
            out.push(format!(
                "line {}: `{}` is documented more than once",
                row.line, row.key
            ));
        }
        let Some(default) = keys.get(&row.key) else {
            out.push(format!(
                "line {}: `{}` is documented but is not a key of Config",
                row.line, row.key
            ));
            continue;
        };
        if row.default != shown(default) {
            out.push(format!(
                "line {}: `{}` default is `{}` on the page, `{}` in Config::default()",
                row.line,
                row.key,
                row.default,
                shown(default)
            ));
        }
        if row.env != env_var(&row.key) {
            out.push(format!(
                "line {}: `{}` environment variable is `{}` on the page, `{}` by the naming rule",
                row.line,
                row.key,
                row.env,
                env_var(&row.key)
            ));
        }
    }
    for key in keys.keys() {
        if !seen.contains(key.as_str()) {
            out.push(format!(
                "`{key}` is a key of Config but docs/configuration.md does not document it"
            ));
        }
    }
    out
}

#[test]
fn configuration_page_documents_every_key_of_the_config_struct() {
    let keys = config_keys();
    assert!(keys.contains_key("http.listen") && keys.contains_key("printers.\"<id>\".alias"));
    let rows = documented_keys(&read(&repo("docs/configuration.md")));
    let wrong = mismatches(&keys, &rows);
    assert!(
        wrong.is_empty(),
        "docs/configuration.md and src/config/ disagree:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_configuration_check_fails_both_ways() {
    let keys = config_keys();
    let page = read(&repo("docs/configuration.md"));
    // A key the struct has but the page lacks.
    let without: String = page
        .lines()
        .filter(|l| !l.starts_with("| `http.listen` |"))
        .map(|l| format!("{l}\n"))
        .collect();
    let wrong = mismatches(&keys, &documented_keys(&without));
    assert!(
        wrong
            .iter()
            .any(|w| w.contains("`http.listen` is a key of Config")),
        "{wrong:?}"
    );
    // A key the page documents but the struct lacks, and a wrong default.
    let extra = page.replacen(
        "\n### `[mqtt]`",
        "\n| `http.no_such_key` | `1` | `PRINT2MQTT_HTTP__NO_SUCH_KEY` | 1 | gone |\n\n### `[mqtt]`",
        1,
    );
    let extra = extra.replacen(
        "| `http.max_json_depth` | `64` |",
        "| `http.max_json_depth` | `65` |",
        1,
    );
    let wrong = mismatches(&keys, &documented_keys(&extra));
    assert!(
        wrong
            .iter()
            .any(|w| w.contains("`http.no_such_key` is documented but")),
        "{wrong:?}"
    );
    assert!(
        wrong
            .iter()
            .any(|w| w.contains("`http.max_json_depth` default")),
        "{wrong:?}"
    );
}

#[test]
fn readme_and_architecture_stay_short() {
    let readme = read(&repo("README.md")).lines().count();
    assert!(
        readme <= 250,
        "README.md has {readme} lines; keep it to 250 and move detail to docs/"
    );
    let architecture = read(&repo("ARCHITECTURE.md")).lines().count();
    assert!(
        architecture <= 120,
        "ARCHITECTURE.md has {architecture} lines; it fits one page"
    );
}
