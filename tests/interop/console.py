"""The Console in a real browser: Debian's headless Chromium (or, with SIGIL_BROWSER=firefox,
Debian's Firefox ESR through geckodriver) driven by Selenium.

Run by tests/console.rs against a running sigil (embedded stores, edge in the same process):
sign in (wrong, then right), create a Service and an Environment, upload two files with
different visibility, gray -> Deploy All -> green, the copied URL serving the bytes (public)
or 403 (protected, unsigned), a visibility changed and redeployed, Rollback, a change without
the CSRF token refused, another account's Services never shown, sign out (the session ends on
the server too). Screenshots of each main screen go to SIGIL_SCREENSHOTS.

Environment: SIGIL_API_URL, SIGIL_ACCOUNT_SID, SIGIL_AUTH_TOKEN, SIGIL_OTHER_SID,
SIGIL_OTHER_TOKEN, SIGIL_EDGE_HTTP (127.0.0.1:PORT), SIGIL_SCREENSHOTS.
"""

import http.client
import json
import os
import shutil
import sys
import tempfile
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.firefox.service import Service as FirefoxService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

API = os.environ["SIGIL_API_URL"].rstrip("/")
SID = os.environ["SIGIL_ACCOUNT_SID"]
TOKEN = os.environ["SIGIL_AUTH_TOKEN"]
OTHER_SID = os.environ["SIGIL_OTHER_SID"]
OTHER_TOKEN = os.environ["SIGIL_OTHER_TOKEN"]
EDGE = os.environ["SIGIL_EDGE_HTTP"]
SHOTS = os.environ["SIGIL_SCREENSHOTS"]
# Firefox: where `cargo install geckodriver` put its driver (SIGIL_BROWSER=firefox).
GECKODRIVER = os.environ.get("SIGIL_GECKODRIVER", "geckodriver")
CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1
    print("ok", what, flush=True)


def browser():
    if os.environ.get("SIGIL_BROWSER") == "firefox":
        opts = webdriver.FirefoxOptions()
        opts.binary_location = "/usr/bin/firefox-esr"
        for flag in ["-headless", "--width=1280", "--height=1000"]:
            opts.add_argument(flag)
        # No update checks or telemetry: the machine's network is closed.
        for pref, value in [
            ("app.update.enabled", False),
            ("datareporting.policy.dataSubmissionEnabled", False),
            ("network.captive-portal-service.enabled", False),
            ("browser.safebrowsing.malware.enabled", False),
            ("browser.safebrowsing.phishing.enabled", False),
        ]:
            opts.set_preference(pref, value)
        return webdriver.Firefox(service=FirefoxService(GECKODRIVER), options=opts)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={scratch('sigil-chromium-')}",
        "--window-size=1280,1000",
    ]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def shot(driver, name, width=1280):
    driver.set_window_size(width, 1000)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height, 600), 4000))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1280, 1000)


def edge_get(url):
    """GETs a copied URL from the edge (the URL's host in the Host header, the edge by address)."""
    u = urllib.parse.urlsplit(url)
    host, port = EDGE.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", u.path, headers={"Host": u.netloc})
    resp = conn.getresponse()
    return resp.status, resp.read()


def api(method, path, cookie=None, csrf=None, form=None):
    u = urllib.parse.urlsplit(API)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if csrf:
        headers["X-Sigil-CSRF"] = csrf
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def wait(driver, cond, seconds=20):
    # The Console redraws a pane after each change: an element found a moment ago may be gone.
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(cond)


def sign_in(driver, sid, token):
    driver.get(f"{API}/console/")
    wait(driver, EC.presence_of_element_located((By.ID, "sign-in")))
    form = driver.find_element(By.ID, "sign-in")
    # Labelled inputs, found by their labels' text.
    for label, value in [("Account SID", sid), ("Auth Token", token)]:
        lab = form.find_element(By.XPATH, f".//label[normalize-space()='{label}']")
        inp = driver.find_element(By.ID, lab.get_attribute("for"))
        inp.clear()
        inp.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def marks(driver, table):
    return [
        m.get_attribute("aria-label")
        for m in driver.find_elements(By.CSS_SELECTOR, f"#{table} .state")
    ]


def deployments(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#deployment-list tbody tr button, #deployment-list tbody tr strong")


def deploy_all(driver):
    before = len(deployments(driver))
    driver.find_element(By.ID, "deploy-all").click()
    wait(driver, lambda d: (len(deployments(d)) == before + 1 and d.find_element(By.ID, "build-status").text == "deployed")
         or d.find_element(By.ID, "build-status").text.startswith("failed"), 120)
    status = driver.find_element(By.ID, "build-status").text
    check(status == "deployed", f"Deploy All deployed (status {status!r})")
    wait(driver, lambda d: marks(d, "assets") and all(m == "deployed" for m in marks(d, "assets")))


def row(driver, path):
    return driver.find_element(By.CSS_SELECTOR, f"#assets tr[data-path='{path}']")


def copy_url(driver, path):
    r = row(driver, path)
    r.find_element(By.CSS_SELECTOR, "details.menu > summary").click()
    r.find_element(By.XPATH, ".//button[normalize-space()='Copy URL']").click()
    wait(driver, lambda d: d.find_element(By.ID, "copied-url").get_attribute("value").endswith(path))
    return driver.find_element(By.ID, "copied-url").get_attribute("value")


# Temporary directories made here (the browser's profile, the files it uploads), removed at
# the end.
MADE = []


def scratch(prefix):
    made = tempfile.mkdtemp(prefix=prefix)
    MADE.append(made)
    return made


def main():
    os.makedirs(SHOTS, exist_ok=True)
    files = scratch("sigil-console-files-")
    public_bytes = b"<h1>hello from the Console</h1>\n"
    protected_bytes = b"<Response><Say>protected</Say></Response>\n"
    with open(os.path.join(files, "hello.html"), "wb") as f:
        f.write(public_bytes)
    with open(os.path.join(files, "secret.xml"), "wb") as f:
        f.write(protected_bytes)
    with open(os.path.join(files, "big.bin"), "wb") as f:
        f.truncate(11 * 1024 * 1024)

    driver = browser()
    try:
        # Wrong credentials: one message, no hint which part.
        sign_in(driver, SID, "0" * 32)
        err = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#sign-in .error").text or False)
        check(err == "Those credentials were not accepted.", f"wrong token refused: {err!r}")
        sign_in(driver, "AC" + "1" * 32, TOKEN)
        err = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#sign-in .error").text or False)
        check(err == "Those credentials were not accepted.", "unknown account refused alike")
        check(TOKEN not in driver.current_url and SID not in driver.current_url, "no credential in the URL")
        shot(driver, "01-sign-in")

        sign_in(driver, SID, TOKEN)
        wait(driver, EC.presence_of_element_located((By.ID, "create-service")))
        check(driver.execute_script("return window.localStorage.length + window.sessionStorage.length") == 0,
              "nothing kept in browser storage")
        cookies = driver.get_cookies()
        session = [c for c in cookies if c["name"] == "sigil_console"]
        check(len(session) == 1 and session[0]["httpOnly"] and session[0].get("sameSite") == "Strict",
              "an HttpOnly, SameSite=Strict session cookie")
        check(driver.execute_script("return document.cookie") == "", "the cookie is out of JavaScript's reach")
        cookie = f"sigil_console={session[0]['value']}"

        # A Service and an Environment.
        form = driver.find_element(By.ID, "create-service")
        form.find_element(By.NAME, "UniqueName").send_keys("console-demo")
        form.find_element(By.NAME, "FriendlyName").send_keys("Console demo")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        link = wait(driver, EC.element_to_be_clickable((By.LINK_TEXT, "console-demo")))
        shot(driver, "02-services")
        link.click()
        form = wait(driver, EC.presence_of_element_located((By.ID, "create-environment")))
        form.find_element(By.NAME, "UniqueName").send_keys("dev")
        form.find_element(By.NAME, "DomainSuffix").send_keys("dev")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(driver, EC.element_to_be_clickable((By.LINK_TEXT, "dev"))).click()
        wait(driver, EC.presence_of_element_located((By.ID, "add")))

        # Add+ -> Upload File: a file dropped, a file too large to be private (the warning, no
        # upload until it is removed), then two picked at once, one protected.
        driver.find_element(By.ID, "add").click()
        driver.execute_script(
            "const dt = new DataTransfer();"
            "dt.items.add(new File(['dropped bytes'], 'dropped.txt', {type: 'text/plain'}));"
            "document.getElementById('drop').dispatchEvent("
            "  new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));")
        wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='Path for dropped.txt']")))
        check(True, "a dropped file is staged")
        picker = driver.find_element(By.ID, "file-picker")
        picker.send_keys(os.path.join(files, "big.bin"))
        Select(driver.find_element(By.CSS_SELECTOR, "select[aria-label='Visibility for big.bin']")).select_by_value("private")
        warn = wait(driver, lambda d: [w for w in d.find_elements(By.CSS_SELECTOR, "#adder .warn") if w.is_displayed()])
        check("10 MB" in warn[0].text and not driver.find_element(By.ID, "upload").is_enabled(),
              f"a private file over 10 MB is warned about before the upload: {warn[0].text!r}")
        driver.find_element(By.CSS_SELECTOR, "button[aria-label='Remove big.bin']").click()
        check(driver.find_element(By.ID, "upload").is_enabled(), "removed, the upload may go")
        picker.send_keys(os.path.join(files, "hello.html") + "\n" + os.path.join(files, "secret.xml"))
        staged = [i.get_attribute("value") for i in driver.find_elements(By.CSS_SELECTOR, "#staged input[type=text]")]
        check(staged == ["/dropped.txt", "/hello.html", "/secret.xml"], f"three files staged: {staged}")
        Select(driver.find_element(By.CSS_SELECTOR, "select[aria-label='Visibility for secret.xml']")).select_by_value("protected")
        driver.find_element(By.ID, "upload").click()
        wait(driver, lambda d: len(marks(d, "assets")) == 3)
        check(marks(driver, "assets") == ["not deployed yet"] * 3, "uploaded Assets show gray circles")
        shot(driver, "03-assets-uploaded")

        deploy_all(driver)
        check(marks(driver, "assets") == ["deployed"] * 3, "Deploy All turns the circles into checks")
        status, body = edge_get(copy_url(driver, "/dropped.txt"))
        check(status == 200 and body == b"dropped bytes", f"the dropped file is served ({status})")

        url = copy_url(driver, "/hello.html")
        status, body = edge_get(url)
        check(status == 200 and body == public_bytes, f"the copied public URL serves the bytes ({status})")
        url = copy_url(driver, "/secret.xml")
        status, _ = edge_get(url)
        check(status == 403, f"the copied protected URL refuses an unsigned fetch ({status})")
        shot(driver, "04-environment-deployed")

        # Visibility: public -> private is a new Version; gray until deployed, then 403.
        hello_url = api_url = copy_url(driver, "/hello.html")
        sel = Select(row(driver, "/hello.html").find_element(By.TAG_NAME, "select"))
        sel.select_by_value("private")
        wait(driver, lambda d: marks(d, "assets").count("not deployed yet") == 1)
        wait(driver, lambda d: row(d, "/hello.html").find_element(By.CSS_SELECTOR, ".state").get_attribute("aria-label")
             == "not deployed yet")
        check(True, "a changed visibility is gray until deployed")
        menu = row(driver, "/hello.html")
        menu.find_element(By.CSS_SELECTOR, "details.menu > summary").click()
        check(not menu.find_elements(By.XPATH, ".//button[normalize-space()='Copy URL']"),
              "no Copy URL for a private Asset")
        deploy_all(driver)
        status, _ = edge_get(hello_url)
        check(status == 403, f"redeployed private: 403 ({status})")

        # Rollback to the first Deployment: public again.
        rows = driver.find_elements(By.CSS_SELECTOR, "#deployment-list tbody tr")
        check(len(rows) == 2, f"two Deployments listed ({len(rows)})")
        rows[1].find_element(By.XPATH, ".//button[normalize-space()='Rollback']").click()
        driver.switch_to.alert.accept()
        wait(driver, lambda d: "(live)" in d.find_elements(By.CSS_SELECTOR, "#deployment-list tbody tr")[0].text
             and len(d.find_elements(By.CSS_SELECTOR, "#deployment-list tbody tr")) == 3)
        status, body = edge_get(api_url)
        check(status == 200 and body == public_bytes, f"after Rollback the public bytes are back ({status})")
        # Logs and the chart show the edge's requests.
        driver.refresh()
        wait(driver, lambda d: "200" in d.find_element(By.ID, "log-list").text, 30)
        chart = driver.find_element(By.CSS_SELECTOR, "#chart svg title").get_attribute("textContent")
        check("in all" in chart and not chart.endswith(" 0 in all"), f"the chart counts requests: {chart!r}")
        shot(driver, "05-environment-history")
        shot(driver, "06-phone-width", width=390)

        # CSRF: the session cookie alone cannot change anything.
        status, _ = api("POST", "/v1/Services", cookie=cookie, form={"UniqueName": "csrf-less", "FriendlyName": "x"})
        check(status == 403, f"a change without the CSRF token is refused ({status})")
        status, _ = api("POST", "/v1/Services", cookie=cookie, csrf="0" * 32, form={"UniqueName": "csrf-bad", "FriendlyName": "x"})
        check(status == 403, f"a change with a wrong CSRF token is refused ({status})")
        status, body = api("GET", "/console/session", cookie=cookie)
        csrf = json.loads(body)["csrf_token"]
        status, _ = api("POST", "/v1/Services", cookie=cookie, csrf=csrf, form={"UniqueName": "with-csrf", "FriendlyName": "with CSRF"})
        check(status == 201, f"the same change with the token is made ({status})")
        status, body = api("GET", "/v1/Services", cookie=cookie)
        names = [s["unique_name"] for s in json.loads(body)["services"]]
        check("csrf-less" not in names and "csrf-bad" not in names, "nothing was made without the token")

        # Sign out: the session ends on the server too.
        driver.find_element(By.ID, "sign-out").click()
        wait(driver, EC.presence_of_element_located((By.ID, "sign-in")))
        status, _ = api("GET", "/v1/Services", cookie=cookie)
        check(status == 401, f"the old cookie is refused after sign-out ({status})")

        # Another account never sees these Services.
        sign_in(driver, OTHER_SID, OTHER_TOKEN)
        form = wait(driver, EC.presence_of_element_located((By.ID, "create-service")))
        form.find_element(By.NAME, "UniqueName").send_keys("others-own")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # The list is drawn once it is fetched: wait for its rows (the other account made
        # one Service of its own for this check).
        wait(driver, lambda d: "others-own" in d.find_element(By.ID, "services").text)
        text = driver.find_element(By.ID, "services").text
        check("console-demo" not in text and "with-csrf" not in text, "another account's Services are not shown")
        driver.get(f"{API}/console/#/services/console-demo")
        wait(driver, lambda d: "Something went wrong" in d.find_element(By.ID, "main").text)
        check(True, "another account's Service by name is not found")
        driver.get(f"{API}/console/#/services/../environments/x")
        wait(driver, lambda d: "There is no such page." in d.find_element(By.ID, "main").text)
        check(True, "a crafted route never reaches the API")
        driver.find_element(By.ID, "sign-out").click()
        wait(driver, EC.presence_of_element_located((By.ID, "sign-in")))
        # Chromium's log of script errors (geckodriver has no such log).
        logs = driver.get_log("browser") if hasattr(driver, "get_log") else None
        errors = logs is not None and [l for l in logs if l.get("level") == "SEVERE" and "favicon" not in l.get("message", "")
                  and not (l.get("source") == "network" and any(
                      code in l.get("message", "") for code in ["401", "403", "/v1/Services/console-demo - "]))]
        if logs is not None:
            check(not errors, f"no script errors in the browser console: {errors}")
    except (AssertionError, TimeoutException):
        shot(driver, "failure")
        print(driver.find_element(By.TAG_NAME, "body").text, file=sys.stderr)
        raise
    finally:
        driver.quit()
        for made in MADE:
            shutil.rmtree(made, ignore_errors=True)
    print(f"{CHECKS} checks passed")


if __name__ == "__main__":
    main()
