//! Resources and prompts aggregated across servers, and list_changed notifications pushed to
//! connected MCP sessions; the real binary with `mcp_ping` children, driven by rmcp's client.

mod common;

use std::time::Duration;

use common::{client, ping, start};
use rmcp::ClientHandler;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use rmcp::service::{NotificationContext, RoleClient};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::test]
async fn resources_and_prompts_of_two_servers_are_aggregated() {
    let inst = start(
        json!([ping("a", &[]), ping("b", &["--only", "ping"])]),
        None,
        2,
    )
    .await;
    let c = client(&inst.mcp_sock()).await;
    let caps = c.peer_info().expect("server info").capabilities.clone();
    assert!(
        caps.resources.is_some() && caps.prompts.is_some(),
        "{caps:?}"
    );

    let mut uris: Vec<String> = c
        .list_all_resources()
        .await
        .expect("resources/list")
        .into_iter()
        .map(|r| r.uri)
        .collect();
    uris.sort();
    assert_eq!(uris, ["ping://a/about", "ping://b/about"]);
    let templates: Vec<String> = c
        .list_all_resource_templates()
        .await
        .expect("resources/templates/list")
        .into_iter()
        .map(|t| t.uri_template)
        .collect();
    assert_eq!(templates, ["ping://a/echo/{text}", "ping://b/echo/{text}"]);

    let read = |uri: &str| {
        let c = &c;
        let uri = uri.to_owned();
        async move {
            c.read_resource(ReadResourceRequestParams::new(uri))
                .await
                .map(|r| match &r.contents[..] {
                    [ResourceContents::TextResourceContents { text, .. }] => text.clone(),
                    other => panic!("unexpected contents {other:?}"),
                })
                .map_err(|e| e.to_string())
        }
    };
    assert_eq!(read("ping://b/about").await.as_deref(), Ok("mcp_ping b"));
    assert_eq!(read("ping://a/about").await.as_deref(), Ok("mcp_ping a"));
    assert_eq!(read("ping://b/echo/hello").await.as_deref(), Ok("hello"));
    let unknown = read("ping://zzz/about").await.expect_err("unknown URI");
    assert!(unknown.contains("\"ping://zzz/about\""), "{unknown}");

    let names: Vec<String> = c
        .list_all_prompts()
        .await
        .expect("prompts/list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        ["a__greet", "b__greet"],
        "colliding names get the prefix"
    );
    let mut params = GetPromptRequestParams::new("b__greet");
    params.arguments = json!({"who": "Ann"}).as_object().cloned();
    let got = c.get_prompt(params).await.expect("prompts/get");
    let text = serde_json::to_value(&got.messages).expect("json");
    assert_eq!(
        text[0]["content"]["text"], "Say hello to Ann from b.",
        "{text}"
    );
    let err = c
        .get_prompt(GetPromptRequestParams::new("greet"))
        .await
        .expect_err("ambiguous name");
    assert!(
        err.to_string().contains("unknown prompt \"greet\""),
        "{err}"
    );
}

/// Records the list_changed notifications a client session receives.
struct Listener(mpsc::UnboundedSender<&'static str>);

impl ClientHandler for Listener {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.0.send("tools");
    }
    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.0.send("resources");
    }
    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.0.send("prompts");
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<&'static str>, what: &str) -> Vec<&'static str> {
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no list_changed {what}"))
        .expect("channel");
    let mut got = vec![first];
    // The other lists' notifications of the same change follow at once.
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        got.push(n);
    }
    got
}

#[tokio::test]
async fn sessions_hear_list_changed_when_a_server_becomes_ready_and_when_a_child_restarts() {
    let inst = start(
        json!([
            ping("a", &[]),
            ping("late", &["--only", "whoami", "--start-delay-ms", "1500"])
        ]),
        None,
        1,
    )
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let c = common::client_as(&inst.mcp_sock(), Listener(tx), None).await;
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        let mut n: Vec<String> = tools.into_iter().map(|t| t.name.into_owned()).collect();
        n.sort();
        n
    };
    let before = names(c.list_all_tools().await.expect("tools/list"));
    assert!(before.contains(&"whoami".to_owned()), "{before:?}");

    // The late server becomes ready: its tools, resources and prompts appear.
    let got = next(&mut rx, "when the second server became ready").await;
    assert!(got.contains(&"tools"), "{got:?}");
    assert!(
        got.contains(&"prompts") && got.contains(&"resources"),
        "{got:?}"
    );
    let after = names(c.list_all_tools().await.expect("tools/list"));
    assert!(
        after.contains(&"a__whoami".to_owned()) && after.contains(&"late__whoami".to_owned()),
        "{after:?}"
    );

    // Kill a's child: its tools go away, then come back after the restart.
    let (_, servers) = common::get(&inst.mcp_sock(), "/servers")
        .await
        .expect("servers");
    let pid = servers["servers"][0]["pid"].as_i64().expect("pid of a") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill a");
    let gone = next(&mut rx, "when a child died").await;
    assert!(gone.contains(&"tools"), "{gone:?}");
    let mut seen = gone.len();
    // The restart (after a 500 ms backoff) brings the tools back, with another notification.
    let back = loop {
        let n = next(&mut rx, "when the child came back").await;
        seen += n.len();
        let now = names(c.list_all_tools().await.expect("tools/list"));
        if now.contains(&"a__whoami".to_owned()) {
            break now;
        }
    };
    assert_eq!(back, after);
    assert!(
        seen >= 2,
        "a notification for going and one for coming back"
    );
}
