# Sourced by load.sh, instructions.sh and pgo.sh: the benchmark backend, an nginx `return 200` on
# 127.0.0.1:<port>, with its config, pid file and logs under <dir>.
#   start_backend <nginx binary> <dir> <port> <worker processes>
start_backend() {
  local nginx=$1 dir=$2 port=$3 workers=$4
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
}
CONF
  "$nginx" -p "$dir" -c "$dir/nginx.conf"
}

# The EXIT trap of a script that runs one backend in its work directory <dir>: kills the
# processes listed in the PIDS array and that nginx, and removes <dir>.
#   PIDS=(); trap 'clean_up "$WORK"' EXIT
clean_up() {
  local dir=$1 p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$dir/nginx.pid" ] && { kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true; }
  rm -rf "$dir"
}
