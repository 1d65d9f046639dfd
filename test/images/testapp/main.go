// Command testapp is the test bed's multi-purpose container program.
//
//	testapp serve [--http=:8080] [--tcp=:9000] [--grpc=:9090] [--unhealthy]
//	    HTTP: /healthz (200, or 500 after POST /healthz/fail; POST /healthz/ok heals),
//	    /env (environment), /file?path=P (a file's content), /exit?code=N.
//	    TCP: echo. gRPC: grpc.health.v1 with service "" SERVING (NOT_SERVING with /healthz/fail).
//	testapp exit [--code=N] [--message=M] [--after=D] [--path=/dev/termination-log] [--log=L]
//	testapp env            print the environment, one VAR=value a line, sorted
//	testapp cat FILE...    print files
//	testapp sleep D        sleep for duration D
//	testapp get [--timeout=2s] [--every=D --for=D] URL...
//	    GET each URL once and print "URL STATUS BODY" (exit 1 on any failure); with
//	    --every, again every D for --for, printing failures and "ok=N failed=M" at the end.
//	/hostname (serve) answers the pod's hostname, to tell the backends of a Service apart;
//	/bytes?n=N answers N bytes (for rate measurements).
//	testapp rate [--tail=N] URL
//	    GET URL and print "bytes=N seconds=S bits_per_second=R" (and the rate of the last N
//	    bytes alone: a traffic shaper lets a burst through at full speed first)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp serve|exit|env|cat|get|rate|hog|sleep ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "exit":
		exit(args)
	case "env":
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Println(e)
		}
	case "cat":
		for _, f := range args {
			b, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Stdout.Write(b)
		}
	case "get":
		os.Exit(get(args))
	case "rate":
		os.Exit(rate(args))
	case "hog":
		hog(args)
	case "sleep":
		d, err := time.ParseDuration(firstOr(args, "1h"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		time.Sleep(d)
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func firstOr(a []string, def string) string {
	if len(a) > 0 {
		return a[0]
	}
	return def
}

func get(args []string) int {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each request")
	every := fs.Duration("every", 0, "repeat every D (0: once)")
	total := fs.Duration("for", 0, "repeat for D")
	_ = fs.Parse(args)
	client := &http.Client{Timeout: *timeout}
	fetch := func(url string) (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
	}
	if *every == 0 {
		rc := 0
		for _, url := range fs.Args() {
			out, err := fetch(url)
			if err != nil {
				fmt.Printf("%s FAIL %v\n", url, err)
				rc = 1
				continue
			}
			fmt.Printf("%s %s", url, out)
		}
		return rc
	}
	ok, failed := 0, 0
	for end := time.Now().Add(*total); time.Now().Before(end); time.Sleep(*every) {
		for _, url := range fs.Args() {
			if _, err := fetch(url); err != nil {
				failed++
				fmt.Printf("%s FAIL %s %v\n", time.Now().Format("15:04:05.000"), url, err)
			} else {
				ok++
			}
		}
	}
	fmt.Printf("ok=%d failed=%d\n", ok, failed)
	if failed > 0 || ok == 0 {
		return 1
	}
	return 0
}

func rate(args []string) int {
	fs := flag.NewFlagSet("rate", flag.ExitOnError)
	tail := fs.Int64("tail", 0, "also measure the rate of the last N bytes alone (after a shaper's burst)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: testapp rate [--tail=N] URL")
		return 2
	}
	start := time.Now()
	resp, err := http.Get(fs.Arg(0))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Println(resp.Status)
		return 1
	}
	var n int64
	tailStart := start
	buf := make([]byte, 64<<10)
	for {
		k, err := resp.Body.Read(buf)
		if n < resp.ContentLength-*tail && n+int64(k) >= resp.ContentLength-*tail {
			tailStart = time.Now()
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return 1
		}
	}
	end := time.Now()
	secs := end.Sub(start).Seconds()
	fmt.Printf("bytes=%d seconds=%.3f bits_per_second=%.0f", n, secs, float64(n)*8/secs)
	if *tail > 0 {
		fmt.Printf(" tail_bits_per_second=%.0f", float64(*tail)*8/end.Sub(tailStart).Seconds())
	}
	fmt.Println()
	return 0
}

func exit(args []string) {
	fs := flag.NewFlagSet("exit", flag.ExitOnError)
	code := fs.Int("code", 0, "exit code")
	msg := fs.String("message", "", "termination message to write")
	path := fs.String("path", "/dev/termination-log", "termination message path")
	after := fs.Duration("after", 0, "wait before exiting")
	logLine := fs.String("log", "", "line to print to stdout before exiting")
	_ = fs.Parse(args)
	time.Sleep(*after)
	if *logLine != "" {
		fmt.Println(*logLine)
	}
	if *msg != "" {
		if err := os.WriteFile(*path, []byte(*msg), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(*code)
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http", ":8080", "HTTP listen address (empty: off)")
	tcpAddr := fs.String("tcp", "", "TCP echo listen address (empty: off)")
	grpcAddr := fs.String("grpc", "", "gRPC health listen address (empty: off)")
	unhealthy := fs.Bool("unhealthy", false, "start with /healthz failing")
	_ = fs.Parse(args)

	var sick atomic.Bool
	sick.Store(*unhealthy)
	hs := health.NewServer()
	setGRPC := func() {
		st := healthpb.HealthCheckResponse_SERVING
		if sick.Load() {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus("", st)
	}
	setGRPC()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /healthz/fail", func(w http.ResponseWriter, r *http.Request) { sick.Store(true); setGRPC() })
	mux.HandleFunc("POST /healthz/ok", func(w http.ResponseWriter, r *http.Request) { sick.Store(false); setGRPC() })
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) {
		h, _ := os.Hostname()
		fmt.Fprintln(w, h)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 {
			http.Error(w, "n: want a byte count", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		chunk := make([]byte, 32<<10)
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Fprintln(w, e)
		}
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "exiting", code)
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})

	if *httpAddr != "" {
		go func() { fatal(http.ListenAndServe(*httpAddr, mux)) }()
	}
	if *tcpAddr != "" {
		ln, err := net.Listen("tcp", *tcpAddr)
		fatal(err)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()
	}
	if *grpcAddr != "" {
		ln, err := net.Listen("tcp", *grpcAddr)
		fatal(err)
		gs := grpc.NewServer()
		healthpb.RegisterHealthServer(gs, hs)
		go func() { fatal(gs.Serve(ln)) }()
	}
	fmt.Println("serving", *httpAddr, *tcpAddr, *grpcAddr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	fmt.Println("terminating")
}

func fatal(err error) {
	if err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// hog allocates and touches MiB of memory (args[0]), says so, and keeps it until killed:
// the memory eviction tests' consumer.
func hog(args []string) {
	n, err := strconv.Atoi(firstOr(args, "100"))
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "hog: MiB must be a positive number")
		os.Exit(2)
	}
	held := make([][]byte, n)
	for i := range held {
		held[i] = make([]byte, 1<<20)
		for j := 0; j < len(held[i]); j += 4096 {
			held[i][j] = 1
		}
	}
	fmt.Printf("holding %d MiB\n", n)
	for {
		time.Sleep(time.Hour)
		runtime.KeepAlive(held)
	}
}
