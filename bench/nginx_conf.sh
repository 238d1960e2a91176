# Sourced by the bench scripts that measure against nginx (bench/http/run.sh, bench/load/run.sh).
# write_nginx_conf DIR PORT: writes DIR/nginx.conf for one nginx worker on 127.0.0.1:PORT that
# answers every request 200 "Hello, World!\n" (the body of raftd-bench-http), keeping its pid,
# logs and temp paths in DIR. keepalive_requests is raised so that nginx, like raftd, never closes
# a busy keep-alive connection during a run.
write_nginx_conf() {
  local dir=$1 port=$2
  mkdir -p "$dir/nginx"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type text/plain;
      return 200 "Hello, World!\n";
    }
  }
}
CONF
}
