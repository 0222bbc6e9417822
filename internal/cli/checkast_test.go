package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/astreal"
)

func checkASTRun(t *testing.T, a *astreal.Ast, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	args = append([]string{"--ami", a.AMIAddr(), "--ami-secret", a.AMISecret()}, args...)
	err := runCheckAST(ctx, args, noEnv, &out, &errOut)
	return out.String() + errOut.String(), err
}

// astConfigFiles runs ast-config with args and returns its files.
func astConfigFiles(t *testing.T, args ...string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := runASTConfig(append([]string{"--out", dir}, args...), noEnv, &out, &errOut); err != nil {
		t.Fatalf("ast-config: %v\n%s%s", err, out.String(), errOut.String())
	}
	files, err := astreal.ReadFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("ast-config wrote %d .conf files", len(files))
	}
	return files
}

// TestCheckASTOnTheRealAsterisk: ast-config's output, installed as its
// INSTALL.txt says, loads in the real Asterisk and check-ast passes on it;
// a sipsilo at another address is named with the file to write again.
func TestCheckASTOnTheRealAsterisk(t *testing.T) {
	files := astConfigFiles(t, "--http", "127.0.0.1:18484", "--ami-secret", "an0ther s3cret")
	a := astreal.Start(t, astreal.Options{Files: files, AMISecret: "an0ther s3cret"})
	out, err := checkASTRun(t, a, "--http", "127.0.0.1:18484")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mustContain(t, out, "ok    ami: logged in", "ok    module func_curl.so loaded",
		"ok    dialplan: context [sipsilo-messages] offers each MESSAGE to http://127.0.0.1:18484/ast/message",
		"ok    pjsip: 4 endpoint(s)", "all checks passed")
	if strings.Contains(out, "1234") {
		t.Fatalf("output shows a password:\n%s", out)
	}
	out, err = checkASTRun(t, a, "--http", "127.0.0.1:9999")
	if err == nil {
		t.Fatalf("passed with the context calling another address:\n%s", out)
	}
	mustContain(t, out, "FAIL  dialplan: the message context calls http://127.0.0.1:18484/ast/message, but sipsilo listens at 127.0.0.1:9999",
		"extensions_sipsilo.conf", "ast-config --http 127.0.0.1:9999")
	out, err = checkASTRun(t, a, "--ami-secret", "wrong")
	if err == nil {
		t.Fatalf("passed with a wrong secret:\n%s", out)
	}
	mustContain(t, out, "FAIL  ami: login as sipsilo refused", "manager_sipsilo.conf")
}

// TestCheckASTNamesTheFileToFix: a missing module names modules.conf, and an
// endpoint whose message_context is not sipsilo's names pjsip.conf.
func TestCheckASTNamesTheFileToFix(t *testing.T) {
	files := astConfigFiles(t)
	a := astreal.Start(t, astreal.Options{Files: files, AMISecret: "1234", NoLoad: []string{"func_curl.so"},
		MessageContext: astreal.FixtureContext})
	out, err := checkASTRun(t, a)
	if err == nil {
		t.Fatalf("passed:\n%s", out)
	}
	mustContain(t, out, "FAIL  module func_curl.so not loaded", "modules.conf: remove any 'noload => func_curl.so'",
		"ok    module res_pjsip_messaging.so loaded",
		`FAIL  pjsip: endpoints whose MESSAGEs bypass sipsilo: 1000 (message_context = "messages")`,
		"pjsip.conf: set 'message_context = sipsilo-messages'")
	out, err = checkASTRun(t, a, "--endpoints", "1002")
	if err == nil || !strings.Contains(out, `1002 (message_context = "messages")`) || strings.Contains(out, "1000 (") {
		t.Fatalf("--endpoints 1002: %v\n%s", err, out)
	}
}
