//! A real headless Chromium driven through chromedriver's W3C WebDriver HTTP API
//! (<https://www.w3.org/TR/webdriver2/>): a small client over reqwest, enough for the dashboard
//! tests (navigate, find, click, type, read text, run a script, screenshots, window size).
//!
//! ```text
//! let browser = Browser::start().await?;      // chromedriver + chromium, fresh profile
//! browser.goto("http://127.0.0.1:PORT/ui").await?;
//! browser.find("#token").await?.send_keys(&browser, "…").await?;
//! browser.screenshot(Path::new("docs/dashboard.png")).await?;
//! ```
//!
//! Chromium runs with `--headless --no-sandbox --disable-gpu --disable-background-networking
//! --no-first-run` and a fresh `--user-data-dir`. [`available`] says whether Debian's `chromium`
//! and `chromium-driver` are installed (`.ci/run` installs them).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `true` when `chromium` and `chromedriver` are on the `PATH`.
pub fn available() -> bool {
    ["chromium", "chromedriver"].iter().all(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A chromedriver process with one browser session. Both end when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    /// The browser's profile, removed when dropped.
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with a fresh profile.
    pub async fn start() -> anyhow::Result<Self> {
        let port = crate::net::free_port()?;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let ready = crate::wait::eventually("chromedriver /status", crate::WAIT * 3, || {
            let (http, url) = (http.clone(), format!("{base}/status"));
            async move {
                let r = http.get(url).send().await.ok()?;
                let v: Value = r.json().await.ok()?;
                (v["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        let profile = tempfile::tempdir()?;
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        ready?;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args },
        }}});
        let v = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {v}"))?
            .to_owned();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let v: Value = response.json().await.context("WebDriver answer")?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The current page's URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        let v = self.call("GET", &self.at("/url"), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Every element matching the CSS `selector` now.
    pub async fn find_all(&self, selector: &str) -> anyhow::Result<Vec<Element>> {
        let body = json!({ "using": "css selector", "value": selector });
        let v = self.call("POST", &self.at("/elements"), Some(body)).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
            .collect())
    }

    /// The first element matching `selector`, waiting for it to appear.
    pub async fn find(&self, selector: &str) -> anyhow::Result<Element> {
        crate::wait::eventually(&format!("an element {selector}"), crate::WAIT, || async {
            self.find_all(selector).await.ok()?.into_iter().next()
        })
        .await
        .map_err(Into::into)
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) -> anyhow::Result<()> {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/click", element.0)),
            None,
        )
        .await
        .map(drop)
    }

    /// Types `text` into `element`.
    pub async fn type_into(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        let body = json!({ "text": text });
        self.call(
            "POST",
            &self.at(&format!("/element/{}/value", element.0)),
            Some(body),
        )
        .await
        .map(drop)
    }

    /// The rendered text of `element`.
    pub async fn text(&self, element: &Element) -> anyhow::Result<String> {
        let v = self
            .call(
                "GET",
                &self.at(&format!("/element/{}/text", element.0)),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the first element matching `selector` shows text containing `needle`, and
    /// returns that text.
    pub async fn wait_for_text(&self, selector: &str, needle: &str) -> anyhow::Result<String> {
        crate::wait::eventually(
            &format!("{selector} to show {needle:?}"),
            crate::WAIT,
            || async {
                let e = self.find_all(selector).await.ok()?.into_iter().next()?;
                let t = self.text(&e).await.ok()?;
                t.contains(needle).then_some(t)
            },
        )
        .await
        .map_err(Into::into)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let body = json!({ "script": script, "args": args });
        self.call("POST", &self.at("/execute/sync"), Some(body))
            .await
    }

    /// Sets the window's size in CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        let body = json!({ "width": width, "height": height });
        self.call("POST", &self.at("/window/rect"), Some(body))
            .await
            .map(drop)
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let v = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("screenshot base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// The browser's cookies for the current page, as WebDriver reports them.
    pub async fn cookies(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.call("GET", &self.at("/cookie"), None).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }
}

fn chromium_binary() -> String {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map_or_else(|| "chromium".to_owned(), |p| (*p).to_owned())
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session stops Chromium (a plain blocking request: drop cannot await);
        // killing the driver ends the rest.
        if !self.session.is_empty() {
            let _ = delete_session(&self.base, &self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn delete_session(base: &str, session: &str) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    Ok(())
}
