package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/web"
)

// Files is a plain http.Handler: mount it in any mux.
func ExampleNewFiles() {
	dir, _ := os.MkdirTemp("", "site")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644)

	files, err := web.NewFiles(web.FilesConfig{Root: dir})
	if err != nil {
		panic(err)
	}
	defer files.Close()
	srv := httptest.NewServer(files)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/hello.txt")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%d %s %q\n", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	// Output: 200 text/plain; charset=utf-8 "hello\n"
}

// In an existing Echo app, EchoHandler keeps sendfile for large files.
func ExampleFiles_EchoHandler() {
	dir, _ := os.MkdirTemp("", "assets")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "app.js"), []byte("console.log(1)\n"), 0o644)

	files, err := web.NewFiles(web.FilesConfig{
		Root:   dir,
		Prefix: "/static/",
		CacheControl: web.CacheRules{
			{Pattern: "*.js", Value: "public, max-age=31536000, immutable"},
		},
	})
	if err != nil {
		panic(err)
	}
	defer files.Close()
	e := echo.New()
	e.GET("/static/*", files.EchoHandler())

	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest("GET", "/static/app.js", nil))
	fmt.Println(w.Code, w.Header().Get("Cache-Control"))
	// Output: 200 public, max-age=31536000, immutable
}

// The web tier composes with the other tiers through tier.Run; here it is
// started and stopped by hand.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "public")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>home</h1>\n"), 0o644)

	site, err := web.New(web.Config{
		Listen: "127.0.0.1:0",
		Files:  web.FilesConfig{Root: dir, SPA: true},
	})
	if err != nil {
		panic(err)
	}
	site.Echo().GET("/api/ping", func(c echo.Context) error { return c.String(200, "pong") })
	if err := site.Start(context.Background()); err != nil {
		panic(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = site.Stop(ctx)
	}()

	for _, path := range []string{"/", "/api/ping", "/settings"} {
		req, _ := http.NewRequest("GET", "http://"+site.Addr()+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %d %q\n", path, resp.StatusCode, body)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	// Output:
	// / 200 "<h1>home</h1>\n"
	// /api/ping 200 "pong"
	// /settings 200 "<h1>home</h1>\n"
}

// Dynamic routes go to the app tier through a balancer pool; the app sees
// the client in X-Forwarded-For and the request ID of the web tier.
func ExampleWithForward() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app: %s %s from %s", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer app.Close()
	pool, err := balancer.New(balancer.Config{Name: "app", Endpoints: []string{app.URL}})
	if err != nil {
		panic(err)
	}
	site, err := web.New(web.Config{Listen: "127.0.0.1:0"},
		web.WithForward(pool, web.ForwardConfig{Prefix: "/api/", ResponseTimeout: 5 * time.Second}))
	if err != nil {
		panic(err)
	}
	if err := site.Start(context.Background()); err != nil {
		panic(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = site.Stop(ctx)
	}()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + site.Addr() + "/api/orders")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 app: GET /api/orders from 127.0.0.1
}
