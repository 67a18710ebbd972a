"""Prepares a freshly started Enclave for a benchmark: signs the bootstrap administrator in and settles
its password, installs an enterprise licence issued with the test key (the server must be a build that
trusts it: the `bench-test` profile with `--features test-license-key`), creates the tenant `bench` and
an API key with the given scopes whose rate limits (key and tenant) are raised to 10,000,000 a minute.

Usage: python3 scripts/bench/setup_server.py BASE_URL DATA_DIR LICENSE_TOOL SCOPE[,SCOPE...]
Prints: "<api key secret> <session cookie name=value>".
"""
import json
import re
import subprocess
import sys
import urllib.request
import http.cookiejar

base, data, tool, scopes = sys.argv[1:5]
jar = http.cookiejar.CookieJar()
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
csrf = None


def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"X-CSRF-Token": csrf} if csrf else {})})
    with web.open(req) as r:
        return json.loads(r.read() or b"null")


first = re.search(r"^ {4}(\S+)\s*$", open(data + "/bootstrap-admin.txt").read(), re.M).group(1)
csrf = call("POST", "/api/v1/auth/login", {"username": "admin", "password": first})["csrf_token"]
csrf = call("POST", "/api/v1/auth/password", {"current_password": first, "new_password": "benchmark admin passphrase"})["csrf_token"]
inst = call("GET", "/api/v1/system/info")["installation_id"]
lic = subprocess.run([tool, "issue", "--key", "tests/fixtures/license/test-key.pk8", "--key-id", "enclave-test-1",
    "--customer", "Bench", "--edition", "enterprise", "--installation-id", inst],
    check=True, capture_output=True, text=True).stdout
call("POST", "/api/v1/license", {"license": lic})
call("POST", "/api/v1/tenants", {"id": "bench", "name": "Bench"})
made = call("POST", "/api/v1/tenants/bench/api-keys", {"name": "bench", "scopes": scopes.split(",")})
call("PUT", f"/api/v1/tenants/bench/api-keys/{made['key']['id']}/rate-limit", {"per_minute": 10000000})
call("PUT", "/api/v1/tenants/bench/rate-limit", {"per_minute": 10000000})
cookie = next(c for c in jar if "enclave_session" in c.name)
print(made["secret"], f"{cookie.name}={cookie.value}")
