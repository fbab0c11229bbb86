//! The status page (`/ui`) of a running host in a real headless Chromium, driven through
//! ChromeDriver (`cargo xtask services up` installs Debian's `chromium` and `chromium-driver`
//! and starts the driver): it loads without console errors, each state machine's SVG has one
//! node per state with its entity count, a workflow run's steps appear once an intent is sent,
//! and a screenshot is written to `target/status-page.png` for people to look at.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use onex_core::contract::load_node_contract;
use onex_e2e::host::{HostOptions, HostProcess, envelope, wait_for};
use onex_e2e::{contracts_with, repo_root, scratch_dir, service_setting, slow_orchestrator};
use serde_json::{Value, json};

fn setting(key: &str) -> String {
    let value = service_setting(key, "");
    assert!(!value.is_empty(), "no {key}: run `cargo xtask services up` first (it starts ChromeDriver)");
    value
}

/// ChromeDriver's `POST /session/{id}/se/log`: the browser console's entries since last asked.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

async fn browser() -> Client {
    let args: Vec<String> = setting("ONEX_CHROME_ARGS").split(' ').map(str::to_owned).collect();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": setting("ONEX_CHROMIUM"), "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(capabilities).connect(&setting("ONEX_WEBDRIVER")).await.unwrap()
}

/// Console entries at level SEVERE (errors), as text.
async fn console_errors(client: &Client) -> Vec<String> {
    let entries = client.issue_cmd(BrowserLog).await.unwrap();
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `count` of the machine `fsm`'s state `state` as the page shows it.
async fn shown_count(client: &Client, fsm: &str, state: &str) -> Option<String> {
    let selector = format!(r#"figure[data-fsm="{fsm}"] g.state[data-state="{state}"]"#);
    client.find(Locator::Css(&selector)).await.ok()?.attr("data-count").await.ok()?
}

#[test]
fn the_status_page_shows_nodes_machines_and_runs_in_a_real_browser() {
    let contracts = contracts_with("ui", &[("orchestrators/slow.yaml", &slow_orchestrator(100))]);
    let host = HostProcess::start(&HostOptions::new(&contracts, &scratch_dir("ui-data")));
    let moved = host.send("infrastructure_state.initialization_complete", json!({ "entity_key": "cluster-a" }));
    assert_eq!(moved.0, 200, "{}", moved.1);
    let reducer = std::fs::read(repo_root().join("contracts/reducers/infrastructure_state.yaml")).unwrap();
    let reducer = load_node_contract("infrastructure_state.yaml", &reducer).unwrap().value;
    let machine = reducer.state_machine.expect("a reducer has a state machine");
    let to_state = moved.1["payload"]["to_state"].as_str().expect("the reply names the new state").to_owned();
    let page = format!("http://{}/ui", host.addr);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser().await;
        client.goto(&page).await.unwrap();
        let title = client.title().await.unwrap();
        assert_eq!(title, "onex-runtime-host status");
        assert_eq!(console_errors(&client).await, Vec::<String>::new(), "the page loads without console errors");

        // Nodes, each with its row.
        let rows = client.find_all(Locator::Css("#nodes tr.node")).await.unwrap();
        assert!(rows.len() >= 8, "every node of the bundled contracts has a row: {}", rows.len());
        client.find(Locator::Css(r#"tr.node[data-node="infra_reducer_infrastructure_state"]"#)).await.unwrap();

        // The reducer's machine: one SVG node per state, the moved entity counted in its state.
        let selector = format!(r#"figure[data-fsm="{}"] svg g.state"#, machine.name);
        let states = client.find_all(Locator::Css(&selector)).await.unwrap();
        assert_eq!(states.len(), machine.states.len(), "one node per state of {}", machine.name);
        let count = shown_count(&client, &machine.name, &to_state).await;
        assert_eq!(count.as_deref(), Some("1"), "cluster-a is counted in {to_state}");

        // A workflow run appears, with every step, after an intent is sent.
        let (status, reply) = host.post(&envelope("intent.slow_requested", json!({})));
        assert_eq!(status, 200, "{reply}");
        let run_id = reply["payload"]["run_id"].as_str().unwrap().to_owned();
        let run_path = format!("/v1/workflows/{run_id}");
        wait_for("the run to finish", Duration::from_secs(20), || {
            (host.get_json(&run_path).1["status"] == "succeeded").then_some(())
        });
        client.goto(&page).await.unwrap();
        let steps_selector = format!(r#"article.run[data-run-id="{run_id}"] li.step"#);
        let steps = client.find_all(Locator::Css(&steps_selector)).await.unwrap();
        let mut shown = Vec::new();
        for step in &steps {
            shown.push((step.attr("data-step").await.unwrap(), step.attr("data-state").await.unwrap()));
        }
        let succeeded = Some("succeeded".to_owned());
        let expected: Vec<_> =
            ["first", "wait", "last"].iter().map(|s| (Some((*s).to_owned()), succeeded.clone())).collect();
        assert_eq!(shown, expected);
        assert_eq!(console_errors(&client).await, Vec::<String>::new());

        client.set_window_size(1400, 2400).await.unwrap();
        let png = client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = repo_root().join("target/status-page.png");
        std::fs::write(&path, png).unwrap();
        client.close().await.unwrap();
    });
}
