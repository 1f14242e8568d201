module brix.invalid/e2e/git-http-server

go 1.21
