use super::*;

fn parse(text: &str) -> Result<McpConfig, ConfigError> {
    McpConfig::parse(text, Path::new("mcp_servers.json"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn seed_list_form_with_stdio_and_remote_servers() {
    let cfg = parse(
        r#"{"mcpServers": [
            {"name": "ping", "command": "mcp_ping", "args": ["--x", "a b"], "env": {"A": "1"}, "transport": "stdio"},
            {"name": "docs", "url": "http://127.0.0.1:9000/mcp", "transport": "http", "timeout_secs": 5},
            {"name": "old", "url": "https://example.invalid/sse", "transport": "sse"}
        ]}"#,
    )
    .expect("valid");
    assert_eq!(cfg.servers.len(), 3);
    assert_eq!(
        cfg.servers[0],
        ServerConfig {
            name: "ping".into(),
            transport: Transport::Stdio {
                command: "mcp_ping".into(),
                args: vec!["--x".into(), "a b".into()],
                env: IndexMap::from([("A".to_owned(), "1".to_owned())]),
                cwd: None,
            },
            timeout: DEFAULT_TIMEOUT,
        }
    );
    assert_eq!(
        cfg.servers[1].transport,
        Transport::Http {
            url: "http://127.0.0.1:9000/mcp".into()
        }
    );
    assert_eq!(cfg.servers[1].timeout, Duration::from_secs(5));
    assert_eq!(cfg.servers[2].transport.kind(), "sse");
}

#[test]
fn map_form_infers_transport_and_keeps_order() {
    let cfg = parse(
        r#"{"mcpServers": {
            "zeta": {"command": "mcp_ping"},
            "alpha": {"url": "http://localhost:1/mcp"},
            "beta": {"type": "streamable-http", "url": "http://localhost:2/mcp"},
            "off": {"command": "nope", "disabled": true}
        }}"#,
    )
    .expect("valid");
    let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["zeta", "alpha", "beta"],
        "file order, disabled left out"
    );
    assert_eq!(cfg.servers[0].transport.kind(), "stdio");
    assert_eq!(cfg.servers[1].transport.kind(), "http");
    assert_eq!(cfg.servers[2].transport.kind(), "http");
}

#[test]
fn errors_name_the_server_and_the_field() {
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "ping", "command": ""}]}"#),
        "mcp_servers.json: server \"ping\": field command: must not be empty"
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "ping", "command": "x", "timeout_secs": 0}]}"#),
        "mcp_servers.json: server \"ping\": field timeout_secs: must be at least 1"
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "ping", "command": "x", "args": "-v"}]}"#),
        "mcp_servers.json: server \"ping\": field args: invalid type: string \"-v\", expected a sequence"
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "ping", "command": "x", "transport": "ws"}]}"#),
        "mcp_servers.json: server \"ping\": field transport: unknown transport \"ws\" (use stdio, http or sse)"
    );
    assert_eq!(
        err(r#"{"mcpServers": {"web": {"type": "http"}}}"#),
        "mcp_servers.json: server \"web\": field url: missing for a http server"
    );
    assert_eq!(
        err(r#"{"mcpServers": {"web": {"url": "ftp://x"}}}"#),
        "mcp_servers.json: server \"web\": field url: \"ftp://x\" must start with http:// or https://"
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"command": "x"}]}"#),
        "mcp_servers.json: server #0 (mcpServers[0]): field name: missing"
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "a__b", "command": "x"}]}"#),
        "mcp_servers.json: server \"a__b\": field name: \"a__b\" must not contain \"__\" (it separates server and tool in tool names)"
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}"#),
        "mcp_servers.json: server \"a\": field name: used by another server"
    );
    assert_eq!(
        err(r#"{"mcpServers": {"a": {"name": "b", "command": "x"}}}"#),
        "mcp_servers.json: server \"a\": field name: \"b\" differs from its key \"a\""
    );
    assert!(
        err(r#"{"mcpServers": [{"name": "a", "command": "x", "comand": "y"}]}"#)
            .starts_with("mcp_servers.json: server \"a\": field comand: unknown field `comand`"),
        "unknown fields are refused: {}",
        err(r#"{"mcpServers": [{"name": "a", "command": "x", "comand": "y"}]}"#)
    );
    assert_eq!(
        err(r#"{"mcpServers": [{"name": "a", "command": "x", "env": {"A=B": "1"}}]}"#),
        "mcp_servers.json: server \"a\": field env: invalid variable name \"A=B\""
    );
}

#[test]
fn file_level_errors() {
    assert!(err("{").starts_with("mcp_servers.json: not valid JSON"));
    assert_eq!(
        err(r#"{"mcpServers": 3}"#),
        "mcp_servers.json: mcpServers must be a list or an object of servers, not a number"
    );
    assert!(err(r#"{}"#).contains("missing field `mcpServers`"));
    let missing = McpConfig::load(Path::new("/nonexistent/mcp_servers.json"))
        .expect_err("missing file")
        .to_string();
    assert!(
        missing.starts_with("cannot read /nonexistent/mcp_servers.json: No such file"),
        "{missing}"
    );
}

#[test]
fn the_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mcp_servers.example.json");
    let cfg = McpConfig::load(&path).expect("mcp_servers.example.json is valid");
    assert!(cfg.servers.iter().any(|s| s.name == "ping"));
}

#[test]
fn dollar_brace_values_come_from_the_environment() {
    let lookup = |var: &str| (var == "SEARCH_KEY").then(|| "sk-from-env-1234".to_owned());
    let text = r#"{"mcpServers": {
        "s": {"command": "srv", "args": ["--key=${SEARCH_KEY}"], "env": {"KEY": "${SEARCH_KEY}", "MODE": "fast"}},
        "r": {"url": "https://mcp.example/${SEARCH_KEY}/mcp"}
    }}"#;
    let cfg = McpConfig::parse_with(text, Path::new("mcp_servers.json"), &lookup).expect("valid");
    let Transport::Stdio { args, env, .. } = &cfg.servers[0].transport else {
        panic!("stdio");
    };
    assert_eq!(args, &vec!["--key=sk-from-env-1234".to_owned()]);
    assert_eq!(env["KEY"], "sk-from-env-1234");
    assert_eq!(env["MODE"], "fast");
    assert_eq!(
        cfg.servers[1].transport,
        Transport::Http {
            url: "https://mcp.example/sk-from-env-1234/mcp".into()
        }
    );
    let unset = McpConfig::parse_with(
        r#"{"mcpServers": {"s": {"command": "srv", "env": {"KEY": "${NOPE}"}}}}"#,
        Path::new("mcp_servers.json"),
        &lookup,
    )
    .expect_err("unset")
    .to_string();
    assert_eq!(
        unset,
        "mcp_servers.json: server \"s\": field env.KEY: ${NOPE} is not set in the aggregator's environment"
    );
    let open = McpConfig::parse_with(
        r#"{"mcpServers": {"s": {"command": "srv", "args": ["${OPEN"]}}}"#,
        Path::new("mcp_servers.json"),
        &lookup,
    )
    .expect_err("unclosed")
    .to_string();
    assert!(open.contains("field args[0]"), "{open}");
}

#[test]
fn a_readable_file_with_literal_env_values_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("mcp_servers.json");
    let literal = r#"{"mcpServers": {"s": {"command": "srv", "env": {"KEY": "sk-literal"}}}}"#;
    let by_ref = r#"{"mcpServers": {"s": {"command": "srv", "env": {"KEY": "${KEY}"}}}}"#;
    std::fs::write(&path, literal).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let w = super::permission_warning(&path, literal).expect("warned");
    assert!(w.contains("readable by every user (mode 644)"), "{w}");
    assert!(!w.contains("sk-literal"), "{w}");
    assert!(
        super::permission_warning(&path, by_ref).is_none(),
        "references only"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(
        super::permission_warning(&path, literal).is_none(),
        "private"
    );
}
