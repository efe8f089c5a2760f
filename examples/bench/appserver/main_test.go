package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServesBothModes(t *testing.T) {
	for _, args := range [][]string{{"-mode", "bare"}, {"-mode", "app"}, {"-mode", "app", "-access-log=false"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, pw) }()
			line, err := bufio.NewReader(pr).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
			tr := &http.Transport{}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			resp, err := c.Get("http://" + addr + "/items/7")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tr.CloseIdleConnections()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"seven"`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			_ = pw.Close()
		})
	}
	if err := run(context.Background(), []string{"-mode", "other"}, io.Discard); err == nil {
		t.Fatal("unknown mode accepted")
	}
}
