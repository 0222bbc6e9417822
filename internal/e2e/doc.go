// Package e2e holds sipsilo's end-to-end tests: each starts the sipsilo binary
// (built once by TestMain, with -race when the tests run with it) in a child
// process beside the FreeSWITCH emulator, real SIP user agents, sipp phones and a
// throwaway MariaDB, all on 127.0.0.1. README.md says how to run them. The
// package has no code of its own.
package e2e
