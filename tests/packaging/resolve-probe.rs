//! Resolves the host names given as arguments with std's `ToSocketAddrs` (glibc's getaddrinfo), the
//! same call the enclave binary makes (LDAP servers, webhooks, external providers). tests/packaging/run.sh
//! builds it statically linked like the release binary (`-C target-feature=+crt-static`), to check that
//! name resolution still works without the shared NSS modules. Exit 1 if a name does not resolve.
use std::net::ToSocketAddrs;

fn main() {
    let mut failed = false;
    for host in std::env::args().skip(1) {
        match (host.as_str(), 80).to_socket_addrs() {
            Ok(addrs) => {
                let list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                println!("{host}: {}", list.join(" "));
                failed |= list.is_empty();
            }
            Err(e) => {
                eprintln!("{host}: {e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
