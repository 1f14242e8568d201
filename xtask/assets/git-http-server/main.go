// Command git-http-server serves the bare repositories under -root over git's smart HTTP
// protocol for brix's end-to-end tests (`cargo xtask e2e`, step `git-server`).
//
// The protocol itself is git's own: every request runs `git http-backend` as a CGI program
// through the standard library's net/http/cgi, exactly as a web server in front of a real git
// host would. This program only adds what a web server's configuration would: the CGI
// environment (GIT_PROJECT_ROOT, export of every repository, pushes without authentication,
// fetches of any reachable commit), request bodies sent chunked (which net/http/cgi refuses)
// passed with a length, a request log on stderr, and GET /.brix-e2e/server, which answers the
// served folder and this executable's path so the setup can tell its own server from another.
//
// It listens on loopback only and checks no credentials: it is a test fixture.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8418", "address to listen on")
	root := flag.String("root", "", "folder holding the bare repositories (required)")
	flag.Parse()
	if *root == "" {
		log.Fatal("-root is required")
	}
	projectRoot, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		log.Fatalf("git --exec-path: %v (is git installed?)", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}

	git := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + projectRoot,
			// Every repository is served, without a git-daemon-export-ok file in each.
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_COUNT=2",
			// Pushes over HTTP need no authenticated user.
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
			// Fetching a commit by its id, as BuildKit does for `#<commit>`; hosts such as
			// GitHub allow it.
			"GIT_CONFIG_KEY_1=uploadpack.allowReachableSHA1InWant",
			"GIT_CONFIG_VALUE_1=true",
		},
		Stderr: os.Stderr,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.brix-e2e/server", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n%s\n", projectRoot, self)
	})
	mux.Handle("/", withLength(git))

	log.Printf("serving %s on http://%s through %s", projectRoot, *addr, backend)
	log.Fatal(http.ListenAndServe(*addr, logged(mux)))
}

// withLength reads a chunked request body into memory, so the CGI program gets a
// CONTENT_LENGTH (net/http/cgi answers 400 to chunked bodies; git sends its larger POSTs
// chunked). The tests' repositories are small.
func withLength(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.TransferEncoding = nil
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder keeps the status a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// logged writes one line per request: method, path and query, status.
func logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Printf("%s %s %d", r.Method, r.URL.RequestURI(), rec.status)
	})
}
