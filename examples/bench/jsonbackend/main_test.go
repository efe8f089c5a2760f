package main

import (
	"io"
	"net/http/httptest"
	"testing"
)

func TestAnswers72BytesOfJSON(t *testing.T) {
	srv := httptest.NewServer(handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/api/item")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(b) != 72 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q (%d bytes) %q", resp.StatusCode, b, len(b), resp.Header.Get("Content-Type"))
	}
}
