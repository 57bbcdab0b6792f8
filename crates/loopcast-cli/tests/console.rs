//! The web console in headless Chromium (driven over WebDriver by chromedriver) against a
//! real `loopcast serve` on 127.0.0.1 that needs an API key: the key asked for, an example
//! forecast with its fan charts, an edited what-if, the planner and its frontier, uploads
//! and pasted JSON, errors shown next to their fields, labelled controls and a narrow
//! window. Screenshots of each view go to `docs/img/` for the README.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them); `LOOPCAST_CHROMIUM` and `LOOPCAST_CHROMEDRIVER` point elsewhere. Without
//! them the test says it was skipped, unless `LOOPCAST_REQUIRE_BROWSER` is set (as CI sets
//! it), when it fails.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{
    InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction,
};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Kills the process when dropped, so a failing test leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` as given by `variable`, else the first of `candidates` that exists.
fn program(variable: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(variable) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    candidates
        .iter()
        .find_map(|name| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

/// The key the server is started with: the console must ask for it.
const API_KEY: &str = "console-key";

/// `loopcast serve` on a free port, needing [`API_KEY`], and its address once it listens.
fn start_server(data_dir: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopcast"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("LOOPCAST_API_KEY", API_KEY)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut banner).unwrap();
    let address = banner.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let server = Running(child);
    wait_for_port(&address);
    (server, address)
}

/// chromedriver on a free port, and its URL once it listens.
fn start_chromedriver(driver: &Path) -> (Running, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(driver)
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let address = format!("127.0.0.1:{port}");
    wait_for_port(&address);
    (running, format!("http://{address}"))
}

fn wait_for_port(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "{address} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Headless Chromium with no network beyond loopback and a throwaway profile.
async fn browser(driver_url: &str, chromium: &Path, profile: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,3600",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(capabilities).connect(driver_url).await.unwrap()
}

/// Runs `script` in the page (its `arguments` are `args`) and returns what it returns.
async fn eval(client: &Client, script: &str, args: Vec<Value>) -> Value {
    client.execute(script, args).await.unwrap()
}

async fn count(client: &Client, css: &str) -> u64 {
    eval(client, "return document.querySelectorAll(arguments[0]).length;", vec![json!(css)])
        .await
        .as_u64()
        .unwrap()
}

async fn text(client: &Client, css: &str) -> String {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;";
    eval(client, script, vec![json!(css)]).await.as_str().unwrap_or_default().to_string()
}

/// Waits until `script` returns true; on timeout, fails with `what` and the page's errors.
async fn until(client: &Client, what: &str, script: &str, args: Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if eval(client, script, args.clone()).await == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            let errors = eval(
                client,
                "return [...document.querySelectorAll('.error')].map(e => e.id + ': ' + e.textContent).filter(t => !t.endsWith(': '));",
                vec![],
            )
            .await;
            panic!("timed out waiting for {what}; errors on the page: {errors}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_count(client: &Client, css: &str, at_least: u64) {
    let script = "return document.querySelectorAll(arguments[0]).length >= arguments[1];";
    until(client, &format!("{at_least} × {css}"), script, vec![json!(css), json!(at_least)]).await;
}

async fn until_text(client: &Client, css: &str, needle: &str) {
    let script =
        "const e = document.querySelector(arguments[0]); return !!e && e.textContent.includes(arguments[1]);";
    until(client, &format!("`{needle}` in {css}"), script, vec![json!(css), json!(needle)]).await;
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

/// Types `value` into the input, replacing what it held, and fires its change event.
async fn fill(client: &Client, css: &str, value: &str) {
    let script = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                  e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));";
    eval(client, script, vec![json!(css), json!(value)]).await;
}

/// Saves a screenshot of the element for the README.
async fn screenshot(client: &Client, css: &str, name: &str) {
    eval(client, "document.querySelector(arguments[0]).scrollIntoView();", vec![json!(css)]).await;
    let png = client.find(Locator::Css(css)).await.unwrap().screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_forecasts_runs_what_ifs_and_plans_in_a_real_browser() {
    let chromium = program("LOOPCAST_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
    let driver = program("LOOPCAST_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            std::env::var_os("LOOPCAST_REQUIRE_BROWSER").is_none(),
            "LOOPCAST_REQUIRE_BROWSER is set but chromium or chromedriver is missing"
        );
        eprintln!("skipped: no chromium and chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (_server, address) = start_server(&work.path().join("data"));
    let (_driver, driver_url) = start_chromedriver(&driver);
    let client = browser(&driver_url, &chromium, &work.path().join("profile")).await;
    let (page, dir) = (client.clone(), work.path().to_path_buf());
    let outcome = tokio::spawn(async move { journey(&page, &address, &dir).await }).await;
    // Close the browser whatever happened, then report.
    client.close().await.unwrap();
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn journey(client: &Client, address: &str, work: &Path) {
    // The page loads without the key; the API answers 401 until it is typed in.
    client.goto(&format!("http://{address}/")).await.unwrap();
    until_text(client, "#api-key-error", "Bearer").await;
    assert_eq!(text(client, "#model-info").await, "not connected");
    fill(client, "#api-key", API_KEY).await;
    until_text(client, "#model-info", "loopcast-small").await;
    assert_eq!(text(client, "#api-key-error").await, "");
    until_count(client, "#example-select option", 2).await;
    // Every control has a label a screen reader can read.
    let unlabelled = "return [...document.querySelectorAll('input, select, textarea, button')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.id || e.outerHTML);";
    assert_eq!(eval(client, unlabelled, vec![]).await, json!([]));

    // Data: the bundled three-service example.
    click(client, "#load-example").await;
    until_text(client, "#data-status", "3 series loaded").await;
    assert_eq!(count(client, "#roles-body tr").await, 4, "rps, cpu, latency and replicas");
    // Roles are chosen in the table: with replicas a covariate there is nothing to plan.
    fill(client, "#role-3", "covariate").await;
    assert_eq!(count(client, "#whatif-action option").await, 0);
    assert!(text(client, "#plans").await.contains("No action channel"));
    fill(client, "#role-3", "action").await;
    assert_eq!(count(client, "#whatif-action option").await, 1);
    assert_eq!(count(client, "#plans .plan-editor").await, 3);

    // Forecast: one fan chart per target, with history, three bands, a median and a
    // loops strip of one cell per step.
    click(client, "#forecast-run").await;
    until_count(client, "#forecast-charts figure.chart", 3).await;
    for channel in ["cpu_util", "latency_p95_ms", "rps"] {
        let chart = format!("#forecast-charts figure[data-channel='{channel}']");
        assert_eq!(count(client, &format!("{chart} path.history")).await, 1, "{channel}");
        assert_eq!(count(client, &format!("{chart} path.band")).await, 3, "{channel}");
        assert_eq!(count(client, &format!("{chart} path.median")).await, 1, "{channel}");
        assert_eq!(count(client, &format!("{chart} rect.loop-cell")).await, 48, "{channel}");
        let drawn = "return [...document.querySelectorAll(arguments[0])].every(p => p.getAttribute('d').length > 20);";
        assert_eq!(eval(client, drawn, vec![json!(format!("{chart} path"))]).await, json!(true), "{channel}");
    }
    let levels = "return [...document.querySelectorAll('#forecast-charts figure:first-child path.band')].map(p => p.dataset.level);";
    assert_eq!(eval(client, levels, vec![]).await, json!(["0.98", "0.8", "0.5"]), "widest band first");
    assert!(text(client, "#forecast-status").await.contains("loops per step"));
    screenshot(client, "#view-forecast", "console-forecast.png").await;

    // The band and horizon controls reach the request.
    click(client, "#band-98").await;
    fill(client, "#forecast-horizon", "24").await;
    click(client, "#forecast-run").await;
    until(client, "a 24-step forecast", "return document.querySelectorAll('#forecast-charts figure:first-child rect.loop-cell').length === 24;", vec![]).await;
    assert_eq!(count(client, "#forecast-charts figure:first-child path.band").await, 2);

    // A horizon past the model's limit comes back as an error next to the horizon field.
    fill(client, "#forecast-horizon", "100000").await;
    click(client, "#forecast-run").await;
    until_text(client, "#forecast-horizon-error", "horizon").await;
    let invalid = eval(
        client,
        "return document.querySelector('#forecast-horizon').getAttribute('aria-invalid');",
        vec![],
    )
    .await;
    assert_eq!(invalid, json!("true"));

    // What-if: three plans (hold, scale out, scale in); one is edited by typing, one by
    // the keyboard on its step line, and a fourth is added.
    click(client, "#tab-whatif").await;
    until_count(client, "#plans .plan-editor", 3).await;
    fill(client, "#plans .plan-editor:nth-child(2) .plan-value", "16").await;
    let before = eval(
        client,
        "return document.querySelector('#plans .plan-editor:nth-child(3) .plan-value').value;",
        vec![],
    )
    .await;
    let handle = client.find(Locator::Css("#plans .plan-editor:nth-child(3) .plan-handle")).await.unwrap();
    handle.send_keys("\u{E013}").await.unwrap(); // ArrowUp
    let after = eval(
        client,
        "return document.querySelector('#plans .plan-editor:nth-child(3) .plan-value').value;",
        vec![],
    )
    .await;
    let (before, after): (f64, f64) =
        (before.as_str().unwrap().parse().unwrap(), after.as_str().unwrap().parse().unwrap());
    assert_eq!(after, before + 1.0, "ArrowUp on a segment raises it by one step");
    click(client, "#add-plan").await;
    assert_eq!(count(client, "#plans .plan-editor").await, 4);
    // Drag the new plan's second segment up with the mouse.
    let value =
        "return Number(document.querySelectorAll('#plans .plan-editor:nth-child(4) .plan-value')[1].value);";
    let before = eval(client, value, vec![]).await.as_f64().unwrap();
    let handle = client
        .find(Locator::Css("#plans .plan-editor:nth-child(4) .plan-handle[data-index='1']"))
        .await
        .unwrap();
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement { element: handle, duration: None, x: 0.0, y: 0.0 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::MoveBy { duration: Some(Duration::from_millis(200)), x: 0.0, y: -30.0 })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    client.perform_actions(drag).await.unwrap();
    let after = eval(client, value, vec![]).await.as_f64().unwrap();
    assert!(after > before, "dragging a segment up raises it ({before} → {after})");
    click(client, "#whatif-run").await;
    until_count(client, ".scenario-chart path.scenario-median", 4).await;
    assert_eq!(count(client, ".scenario-chart path.scenario-band").await, 4);
    assert_eq!(count(client, ".difference-chart path.difference").await, 3, "every plan but the baseline");
    assert_eq!(count(client, "table.differences tbody tr").await, 4);
    let plans = "return [...document.querySelectorAll('.scenario-chart path.scenario-median')].map(p => p.dataset.plan);";
    assert_eq!(eval(client, plans, vec![]).await, json!(["hold", "scale-out", "scale-in", "plan-4"]));
    screenshot(client, "#view-whatif", "console-whatif.png").await;

    // A duplicate plan name is refused next to that plan's name.
    fill(client, "#plan-name-1", "hold").await;
    click(client, "#whatif-run").await;
    until_text(client, "#plan-name-1-error", "appears twice").await;

    // Plan: the example's question (replicas 2–24, latency q0.9 ≤ 250 ms).
    click(client, "#tab-plan").await;
    let prefilled = "return [document.querySelector('#plan-action').value, document.querySelector('#plan-max').value, document.querySelector('#plan-threshold').value];";
    assert_eq!(eval(client, prefilled, vec![]).await, json!(["replicas", "24", "250"]));
    click(client, "#plan-run").await;
    until_count(client, "#plan-frontier circle.frontier-point", 1).await;
    assert!(!text(client, "#plan-detail").await.is_empty());
    assert_eq!(count(client, "#plan-schedule path.schedule").await, 1);
    assert!(count(client, "#plan-schedule-body tr").await >= 1, "the recommended schedule is listed");
    assert_eq!(count(client, "#plan-forecast line.threshold").await, 1);
    assert_eq!(count(client, "#plan-forecast path.constraint-quantile").await, 1);
    assert_eq!(count(client, "#plan-frontier circle.chosen").await, 1, "the recommended plan is marked");
    click(client, "#plan-frontier circle.frontier-point").await;
    until_text(client, "#frontier-inspect", "Inspected").await;
    assert_eq!(count(client, "#plan-schedule path.inspected-schedule").await, 1);
    // The keyboard opens a point too: focus the last one and press Enter.
    let last = count(client, "#plan-frontier circle.frontier-point").await - 1;
    let focus = "document.querySelector(`#plan-frontier circle[data-index='${arguments[0]}']`).focus();";
    eval(client, focus, vec![json!(last)]).await;
    let enter = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E007}' })
        .then(KeyAction::Up { value: '\u{E007}' });
    client.perform_actions(enter).await.unwrap();
    let inspected =
        "return document.querySelector('#plan-frontier circle.inspected')?.dataset.index === arguments[0];";
    until(client, "the last point inspected", inspected, vec![json!(last.to_string())]).await;
    screenshot(client, "#view-plan", "console-plan.png").await;

    // A quantile out of range is shown next to the quantile field.
    fill(client, "#plan-quantile", "1.5").await;
    click(client, "#plan-run").await;
    until_text(client, "#plan-quantile-error", "constraint.quantile").await;
    // A bound no schedule keeps: the least risky one is shown, and said to be so.
    fill(client, "#plan-quantile", "0.9").await;
    fill(client, "#plan-threshold", "1").await;
    click(client, "#plan-run").await;
    until_text(client, "#plan-schedule-caption", "Least risky").await;
    let class = eval(client, "return document.querySelector('#plan-detail').className;", vec![]).await;
    assert_eq!(class, json!("detail infeasible"));
    assert_eq!(count(client, "#plan-frontier circle.chosen").await, 1);

    // Upload: a malformed CSV names its file, row and column next to the file field…
    let bad = work.join("bad.csv");
    std::fs::write(
        &bad,
        "series_id,timestamp,channel,value\napi,2024-01-01T00:00:00Z,rps,1\napi,yesterday,rps,2\n",
    )
    .unwrap();
    click(client, "input[name='source'][value='upload']").await;
    let file = client.find(Locator::Css("#upload-file")).await.unwrap();
    file.send_keys(bad.to_str().unwrap()).await.unwrap();
    click(client, "#upload-button").await;
    until_text(client, "#upload-file-error", "bad.csv: row 2").await;
    screenshot(client, "#data", "console-upload-error.png").await;

    // …and a real wide CSV with its columns named is read into series.
    let wide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/services_wide.csv");
    file.send_keys(wide.canonicalize().unwrap().to_str().unwrap()).await.unwrap();
    eval(client, "document.querySelector('#upload-layout').value = 'wide';", vec![]).await;
    fill(client, "#upload-series-id", "service").await;
    fill(client, "#upload-timestamp", "ts").await;
    fill(client, "#upload-actions", "replicas").await;
    click(client, "#upload-button").await;
    until_text(client, "#data-status", "Read 1728 rows").await;
    assert_eq!(text(client, "#upload-file-error").await, "");

    // Pasted JSON that does not parse is refused next to the text area.
    click(client, "input[name='source'][value='paste']").await;
    fill(client, "#paste-json", "{\"series\": [").await;
    click(client, "#paste-button").await;
    until_text(client, "#paste-json-error", "not valid JSON").await;
    // A plan request pasted whole brings its series and its capacity question.
    let plan = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/requests/plan.json"),
    )
    .unwrap();
    fill(client, "#paste-json", &plan).await;
    click(client, "#paste-button").await;
    until_text(client, "#data-status", "1 series loaded").await;
    assert_eq!(text(client, "#paste-json-error").await, "");
    let prefilled = "return [document.querySelector('#plan-change-every').value, document.querySelector('#plan-cost').value];";
    assert_eq!(eval(client, prefilled, vec![]).await, json!(["16", "0.05"]));

    // A narrow window keeps everything in one column, with no sideways scrolling.
    client.set_window_size(400, 1600).await.unwrap();
    click(client, "#tab-forecast").await;
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth;";
    until(client, "the page to fit a 400 px window", fits, vec![]).await;
}
