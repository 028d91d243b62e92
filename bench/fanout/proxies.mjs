// How the fan-out benchmark runs each caching proxy in front of the origin: a configuration written into the
// run's own temporary folder (cache, pid, logs, temp files), and a foreground command line. Loopback only.
import { chownSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

export const VARNISHD = process.env.VARNISHD ?? '/usr/sbin/varnishd';
export const SQUID = process.env.SQUID ?? '/usr/sbin/squid';
export const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';

const isRoot = process.getuid?.() === 0;

/**
 * Varnish: streaming (`beresp.do_stream`), one-hour TTL, malloc storage of 2 GiB; requests wait on the
 * object's waiting list while the first one fetches it, and stream it once the backend's headers are in.
 * `-j none`: no privilege separation, the worker runs as the user who started it (so it can use the folder).
 */
export function varnish({ dir, port, originPort }) {
  const vcl = `vcl 4.1;

backend origin {
  .host = "127.0.0.1";
  .port = "${originPort}";
  .connect_timeout = 5s;
  .first_byte_timeout = 60s;
  .between_bytes_timeout = 60s;
}

sub vcl_recv {
  unset req.http.Cookie;
  unset req.http.Authorization;
  return (hash);
}

sub vcl_backend_response {
  unset beresp.http.Set-Cookie;
  set beresp.do_stream = true;
  set beresp.ttl = 1h;
  set beresp.grace = 0s;
}
`;
  return {
    files: { 'bench.vcl': vcl },
    command: VARNISHD,
    args: ['-F', '-j', 'none', '-n', path.join(dir, 'varnish'), '-a', `127.0.0.1:${port}`, '-T', 'none', '-f', path.join(dir, 'bench.vcl'), '-s', 'malloc,2G'],
    describe: 'varnishd -F -j none -a 127.0.0.1 -s malloc,2G; VCL: beresp.do_stream = true, beresp.ttl = 1h',
  };
}

/**
 * Squid in accelerator mode, memory cache only (no cache_dir), collapsed forwarding: requests for an object
 * being fetched attach to the fetch and read the object as it grows. As root, Squid switches to
 * `cache_effective_user` (Debian: proxy), which must own the folder.
 */
export function squid({ dir, port, originPort }) {
  const p = (name) => path.join(dir, name);
  const conf = `http_port 127.0.0.1:${port} accel defaultsite=bench no-vhost
cache_peer 127.0.0.1 parent ${originPort} 0 no-query originserver name=origin
cache_peer_access origin allow all
never_direct allow all
http_access allow all
collapsed_forwarding on
cache_mem 2200 MB
maximum_object_size_in_memory 1100 MB
maximum_object_size 1100 MB
memory_cache_mode always
visible_hostname bench
${isRoot ? 'cache_effective_user proxy\n' : ''}pid_filename ${p('squid.pid')}
cache_log ${p('cache.log')}
access_log none
cache_store_log none
coredump_dir ${dir}
netdb_filename none
icp_port 0
htcp_port 0
pinger_enable off
shutdown_lifetime 1 seconds
`;
  return {
    files: { 'squid.conf': conf },
    prepare: () => {
      if (isRoot) chownTree(dir, 'proxy');
    },
    command: SQUID,
    args: ['-N', '-f', p('squid.conf')],
    describe: 'squid -N, accel, collapsed_forwarding on, cache_mem 2200 MB, maximum_object_size(_in_memory) 1100 MB, no cache_dir',
  };
}

/**
 * nginx with a disk cache and the cache lock: one request fills the cache entry (streaming to its own
 * client), the others wait for the lock (nginx polls it every 500 ms) and are served from the cache once the
 * entry is complete.
 */
export function nginx({ dir, port, originPort }) {
  const p = (name) => path.join(dir, name);
  const conf = `${isRoot ? 'user root root;\n' : ''}worker_processes auto;
pid ${p('nginx.pid')};
error_log ${p('error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path ${p('body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  proxy_cache_path ${p('cache')} levels=1:2 keys_zone=bench:10m max_size=8g inactive=1h use_temp_path=off;
  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 8;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_key $uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 600s;
      proxy_cache_lock_age 600s;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }
  }
}
`;
  return {
    files: { 'nginx.conf': conf },
    command: NGINX,
    args: ['-p', dir, '-e', p('error.log'), '-c', p('nginx.conf'), '-g', 'daemon off;'],
    describe: 'nginx, worker_processes auto, proxy_cache on disk, proxy_cache_lock on (timeout and age 600 s)',
  };
}

/** chown -R, by user name (looked up in /etc/passwd). */
function chownTree(dir, user) {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user} in /etc/passwd`);
  const [uid, gid] = line.split(':').slice(2, 4).map(Number);
  const walk = (p) => {
    chownSync(p, uid, gid);
    if (statSync(p).isDirectory()) for (const name of readdirSync(p)) walk(path.join(p, name));
  };
  walk(dir);
}
