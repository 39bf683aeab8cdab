#!/usr/bin/perl

# scripts/rustdesk-nginx-conf: rustdesk-server command lines, environment,
# .env and --config files turned into nginx configuration.  Every flag and
# variable maps to the directive the README names (the printed text is
# checked, with the comment naming its source); the precedence of flag,
# --config, .env and environment; hbbr's PORT + 1; bandwidths hbbr ignores
# give no directive; the one rustdesk_key of both modules; $VAR expansion;
# errors (exit status 2, the flag named, nothing on stdout).  Then the
# output passes nginx -t, and nginx started with it on free loopback ports
# serves a registration, a relay request and a relayed session; a relay
# client with a wrong key is refused.
#
# The script runs with a controlled environment (only what a test gives,
# and PATH) and a working directory of its own.

use warnings;
use strict;

use Test::More;
use File::Temp qw/ tempdir /;
use IO::Socket::INET;
use MIME::Base64 qw/ encode_base64 /;
use POSIX ();

use lib 't/lib';
use Test::Nginx qw/ port_base /;
use RustDesk::Session;
use RustDesk::RelayTest qw/ console /;

my $t = Test::Nginx->new()->has()->plan(231);

my $SCRIPT = "$Test::Nginx::ROOT/scripts/rustdesk-nginx-conf";
my $TMP = tempdir('rustdesk-conf-XXXXXXXXXX', TMPDIR => 1, CLEANUP => 1);
my $n_dir = 0;

# a new working directory for the servers, with these files in it
sub workdir {
	my (%files) = @_;
	my $d = "$TMP/w" . ++$n_dir;
	mkdir $d or die "$d: $!\n";

	for my $f (keys %files) {
		open(my $fh, '>', "$d/$f") or die "$d/$f: $!\n";
		print $fh $files{$f};
		close $fh;
	}

	return $d;
}

# Runs the script: { rc, out, err }.  The environment is exactly %$env
# (and PATH).
sub conv {
	my ($env, @args) = @_;
	my $o = "$TMP/out";

	my $pid = fork() // die "fork: $!\n";

	if ($pid == 0) {
		open(STDOUT, '>', "$o.1") or POSIX::_exit(126);
		open(STDERR, '>', "$o.2") or POSIX::_exit(126);
		%ENV = (PATH => '/usr/bin:/bin', %$env);
		exec($^X, $SCRIPT, @args) or POSIX::_exit(127);
	}

	waitpid($pid, 0);

	return { rc => $? >> 8, out => slurp("$o.1"), err => slurp("$o.2") };
}

my $EMPTY = workdir();

# conv() in an empty working directory
sub c {
	my ($env, @cmds) = @_;
	return conv($env, '-d', $EMPTY, @cmds);
}

sub slurp {
	my ($f) = @_;
	open(my $fh, '<', $f) or return '';
	local $/;
	return scalar <$fh>;
}

# The directives of an output, one a line, blanks squeezed, comments out.
sub directives {
	my ($r) = @_;
	my @d;

	for (split /\n/, $r->{out}) {
		next if /^\s*(?:#|$)/;
		s/^\s+|\s+$//g;
		s/\s+/ /g;
		push @d, $_;
	}

	return @d;
}

# The directives of an output that match a pattern, joined by '|'.
sub d {
	my ($r, $re) = @_;
	return join('|', grep { $_ =~ $re } directives($r));
}

# The comment of the first directive starting with this text (blanks
# squeezed): the one above it, or above its server {}, joined in one line.
sub comment_of {
	my ($r, $start) = @_;
	my @c;

	for (split /\n/, $r->{out}) {
		(my $line = $_) =~ s/^\s+|\s+$//g;
		$line =~ s/\s+/ /g;

		if ($line =~ /^#\s?(.*)$/) {
			push @c, $1;
		} elsif (index($line, $start) == 0) {
			return join(' ', @c);
		} elsif ($line eq '' || $line eq '}') {
			@c = ();
		}
	}

	return '';
}

# An error: exit status 2, nothing on stdout, stderr matching.
sub fails {
	my ($r, $re, $name) = @_;
	my $ok = $r->{rc} == 2 && $r->{out} eq '' && $r->{err} =~ $re;
	ok($ok, $name) or diag("rc $r->{rc}, stderr: $r->{err}stdout: "
		. substr($r->{out}, 0, 200));
}

sub ok_conv {
	my ($r) = @_;
	return $r->{rc} == 0 && $r->{out} =~ /^stream \{$/m;
}

###############################################################################

# Defaults: only the listeners, the key directory and the database

{
	my $r = c({}, 'hbbs');
	is(join("\n", directives($r)), join("\n",
		'stream {', "rustdesk_key_dir $EMPTY;",
		"rustdesk_database $EMPTY/db_v2.sqlite3;",
		'server {', 'listen 21115 reuseport;', 'rustdesk_nat_test;', '}',
		'server {', 'listen 21116 reuseport;', 'listen 21116 udp reuseport;',
		'rustdesk_rendezvous;', '}',
		'server {', 'listen 21118 reuseport;', 'rustdesk_rendezvous websocket;',
		'}',
		'server {', 'listen 127.0.0.1:21120;', 'rustdesk_console;', '}', '}'),
		'hbbs, defaults: 21115, 21116 TCP+UDP, 21118, console on '
		. '127.0.0.1:21120, key directory, database');
	is($r->{err}, '', 'hbbs, defaults: no notes');
	like(comment_of($r, 'server {'), qr/port - 1/, 'NAT test port commented');
	like($r->{out}, qr/hbbs serves it to loopback\s+#\s+clients of port 21115/,
		'console: the comment says hbbs serves it on port - 1');

	$r = c({}, 'hbbr');
	is(join("\n", directives($r)), join("\n",
		'stream {', "rustdesk_key_dir $EMPTY;",
		'server {', 'listen 21117 reuseport;', 'rustdesk_relay;', '}',
		'server {', 'listen 21119 reuseport;', 'rustdesk_relay websocket;',
		'}',
		'server {', 'listen 127.0.0.1:21121;', 'rustdesk_relay_console;', '}',
		'}'),
		'hbbr, defaults: 21117, 21119, console on 127.0.0.1:21121');
	like($r->{out}, qr{^\s*# rustdesk_relay_blacklist  \Q$EMPTY\E/blacklist\.txt;
		.*^\s*# rustdesk_relay_blocklist  \Q$EMPTY\E/blocklist\.txt;}msx,
		'hbbr: the lists commented out when absent');

	my @lm = map { [ /^load_module (\S+);$/mg ] }
		map { conv({}, '--nginx-conf', '-d', $EMPTY, @$_)->{out} }
		[ 'hbbs' ], [ 'hbbr' ], [ '/usr/sbin/hbbr', 'hbbs' ];
	is(join(' | ', map { join(' ', @$_) } @lm), join(' | ',
		'modules/ngx_stream_module.so '
			. 'modules/ngx_stream_rustdesk_rendezvous_module.so',
		'modules/ngx_stream_module.so modules/ngx_stream_rustdesk_relay_module.so',
		'modules/ngx_stream_module.so '
			. 'modules/ngx_stream_rustdesk_rendezvous_module.so '
			. 'modules/ngx_stream_rustdesk_relay_module.so'),
		'--nginx-conf: the stream module and the modules needed');

	$r = conv({}, '--nginx-conf', "--dir=$EMPTY", 'hbbs');
	like($r->{out}, qr/^worker_processes auto;\n.*^events \{\n.*^\}\n.*^stream \{/ms,
		'--nginx-conf: worker_processes, events, stream');
	unlike(c({}, 'hbbs')->{out}, qr/load_module|events/,
		'default: the stream block alone');

	$r = conv({}, 'hbbs');
	like(join('|', directives($r)), qr{rustdesk_key_dir /var/lib/rustdesk;},
		'default directory /var/lib/rustdesk');

	$r = conv({ HOME => '/root', USER => 'x', SHELL => '/bin/sh', TERM => 'x',
		LANG => 'C.UTF-8' }, '-d', $EMPTY, 'hbbs', 'hbbr');
	is($r->{err}, '', 'unrelated environment variables: ignored, no notes');

	like(conv({}, '--help')->{out}, qr/^Usage: rustdesk-nginx-conf/,
		'--help');
}

###############################################################################

# hbbs flags, in every form clap takes

{
	my @cases = (
		[ 'hbbs -p 30000', 'listen 29999 reuseport;|listen 30000 reuseport;'
			. '|listen 30000 udp reuseport;|listen 30002 reuseport;'
			. '|listen 127.0.0.1:30004;', qr/^listen /,
			'hbbs -p 30000: port - 1, port, port + 2, console on port + 4',
			qr/\(hbbs -p 30000\)/ ],
		[ 'hbbs --port=30000', 'listen 30000 udp reuseport;', qr/udp/ ],
		[ 'hbbs --port 30000', 'listen 30000 udp reuseport;', qr/udp/ ],
		[ 'hbbs -p30000', 'listen 30000 udp reuseport;', qr/udp/ ],
		[ 'hbbs -p=30000', 'listen 30000 udp reuseport;', qr/udp/ ],
		[ 'hbbs -b 127.0.0.2', 'listen 127.0.0.2:21115 reuseport;'
			. '|listen 127.0.0.2:21116 reuseport;'
			. '|listen 127.0.0.2:21116 udp reuseport;'
			. '|listen 127.0.0.2:21118 reuseport;|listen 127.0.0.1:21120;',
			qr/^listen /, 'hbbs -b: every listener but the console' ],
		[ 'hbbs --bind=::1', 'listen [::1]:21116 udp reuseport;', qr/udp/,
			'hbbs --bind IPv6: bracketed' ],
		[ 'hbbs --bind ::', 'listen [::]:21116 udp reuseport ipv6only=off;',
			qr/udp/, 'hbbs --bind :: dual-stack as hbbs' ],
		[ 'hbbs -s 7', 'rustdesk_serial 7;', qr/serial/, 'hbbs -s',
			qr/\(hbbs -s\)/ ],
		[ 'hbbs --serial=7', 'rustdesk_serial 7;', qr/serial/ ],
		[ 'hbbs -R a.example.com,b.example.com',
			'rustdesk_rendezvous_servers a.example.com,b.example.com;',
			qr/rendezvous_servers/, 'hbbs -R', qr/\(hbbs -R\)/ ],
		[ 'hbbs --rendezvous-servers a,,b,',
			'rustdesk_rendezvous_servers a,b;', qr/rendezvous_servers/,
			'hbbs --rendezvous-servers: empty entries dropped as hbbs does' ],
		[ 'hbbs -u https://example.com/rustdesk-1.2.3-x86_64.deb',
			'rustdesk_software_url https://example.com/rustdesk-1.2.3-x86_64.deb;',
			qr/software_url/, 'hbbs -u', qr/\(hbbs -u\)/ ],
		[ 'hbbs --software-url=http://h/x?a=1&b',
			'rustdesk_software_url "http://h/x?a=1&b";', qr/software_url/,
			'hbbs --software-url: quoted' ],
		[ 'hbbs -r relay.example.com:21117,10.0.0.2',
			'rustdesk_relay_servers relay.example.com:21117,10.0.0.2;',
			qr/relay_servers/, 'hbbs -r', qr/\(hbbs -r\)/ ],
		[ 'hbbs --relay-servers=r.example.com',
			'rustdesk_relay_servers r.example.com;', qr/relay_servers/ ],
		[ 'hbbs -M 52428800', 'listen 21116 udp reuseport rcvbuf=52428800;',
			qr/udp/, 'hbbs -M: rcvbuf' ],
		[ 'hbbs --rmem 0', 'listen 21116 udp reuseport;', qr/udp/,
			'hbbs --rmem 0: the system\'s default, no rcvbuf' ],
		[ 'hbbs --mask 192.168.1.0/24', 'rustdesk_lan_mask 192.168.1.0/24;',
			qr/lan_mask/, 'hbbs --mask', qr/\(hbbs --mask=192\.168\.1\.0\/24\)/ ],
		[ 'hbbs --mask=10.1.2.3/8', 'rustdesk_lan_mask 10.0.0.0/8;',
			qr/lan_mask/, 'hbbs --mask: the network address' ],
		[ 'hbbs --mask 10.1.2.3', 'rustdesk_lan_mask 10.1.2.3/32;',
			qr/lan_mask/, 'hbbs --mask: an address is a /32' ],
		[ 'hbbs -k ABC', 'rustdesk_key ABC;', qr/rustdesk_key /, 'hbbs -k',
			qr/\(hbbs -k ABC\)/ ],
		[ 'hbbs --key=ABC', 'rustdesk_key ABC;', qr/rustdesk_key / ],
		[ 'hbbs -k ""', 'rustdesk_key "";', qr/rustdesk_key /,
			'hbbs -k "": quoted empty' ],
		[ q{hbbs -k 'a b;"c'}, 'rustdesk_key "a b;\"c";', qr/rustdesk_key /,
			'hbbs -k: a key nginx needs quoted' ],
		[ '/opt/rustdesk/hbbs -p 21116', 'listen 21116 udp reuseport;', qr/udp/,
			'a path ending in hbbs' ],
	);

	for my $c (@cases) {
		my ($cmd, $want, $re, $name, $comment) = @$c;
		my $r = c({}, $cmd);
		is(d($r, $re), $want, $name // $cmd) or diag($r->{err});

		if ($comment) {
			my ($directive) = split /\|/, $want;
			like(comment_of($r, $directive), $comment,
				"$name: the comment names it");
		}
	}

	# hbbr flags

	my $r = c({}, 'hbbr -p 30001');
	is(d($r, qr/^listen/), 'listen 30001 reuseport;|listen 30003 reuseport;'
		. '|listen 127.0.0.1:30005;', 'hbbr -p: the port itself (no + 1)');
	is(d(c({}, 'hbbr --port=30001'), qr/^listen/), d($r, qr/^listen/),
		'hbbr --port=');
	is(d(c({}, 'hbbr -b 127.0.0.3'), qr/^listen/),
		'listen 127.0.0.3:21117 reuseport;|listen 127.0.0.3:21119 reuseport;'
		. '|listen 127.0.0.1:21121;', 'hbbr -b');
	is(d(c({}, 'hbbr --bind=fe80::1'), qr/^listen \[/),
		'listen [fe80::1]:21117 reuseport;|listen [fe80::1]:21119 reuseport;',
		'hbbr --bind IPv6');
	$r = c({}, 'hbbr -k xyz');
	is(d($r, qr/rustdesk_key /), 'rustdesk_key xyz;', 'hbbr -k');
	like(comment_of($r, 'rustdesk_key '), qr/hbbr -k xyz/,
		'hbbr -k: the comment names it');
}

###############################################################################

# Environment variables

{
	my @cases = (
		[ { KEY => 'k1' }, 'hbbs', 'rustdesk_key k1;', qr/rustdesk_key /,
			'KEY' ],
		[ { BIND => '127.0.0.5' }, 'hbbs',
			'listen 127.0.0.5:21116 udp reuseport;', qr/udp/, 'BIND (hbbs)' ],
		[ { BIND => ' 127.0.0.5 ' }, 'hbbr', 'listen 127.0.0.5:21117 reuseport;',
			qr/21117/, 'BIND (hbbr), trimmed as the servers do' ],
		[ { BIND => '' }, 'hbbs', 'listen 21116 udp reuseport;', qr/udp/,
			'BIND empty: all addresses' ],
		[ { PORT => '30000' }, 'hbbs', 'listen 30000 udp reuseport;', qr/udp/,
			'PORT (hbbs)' ],
		[ { RELAY_SERVERS => 'r1.example.com,r2.example.com:21117' }, 'hbbs',
			'rustdesk_relay_servers r1.example.com,r2.example.com:21117;',
			qr/relay_servers/, 'RELAY_SERVERS' ],
		[ { RENDEZVOUS_SERVERS => 'id.example.com' }, 'hbbs',
			'rustdesk_rendezvous_servers id.example.com;',
			qr/rendezvous_servers/, 'RENDEZVOUS_SERVERS' ],
		[ { SOFTWARE_URL => 'https://x/rustdesk-1.3.0.exe' }, 'hbbs',
			'rustdesk_software_url https://x/rustdesk-1.3.0.exe;',
			qr/software_url/, 'SOFTWARE_URL' ],
		[ { SERIAL => '12' }, 'hbbs', 'rustdesk_serial 12;', qr/serial/,
			'SERIAL' ],
		[ { RMEM => '1048576' }, 'hbbs',
			'listen 21116 udp reuseport rcvbuf=1048576;', qr/udp/, 'RMEM' ],
		[ { MASK => '172.16.0.0/12' }, 'hbbs', 'rustdesk_lan_mask 172.16.0.0/12;',
			qr/lan_mask/, 'MASK' ],
		[ { MASK => '172.16.0.0/12', LOCAL_IP => '172.16.0.9' }, 'hbbs',
			'rustdesk_lan_mask 172.16.0.0/12;|rustdesk_local_ip 172.16.0.9;',
			qr/lan_mask|local_ip/, 'LOCAL_IP with MASK' ],
		[ { ALWAYS_USE_RELAY => 'Y' }, 'hbbs', 'rustdesk_always_use_relay on;',
			qr/always/, 'ALWAYS_USE_RELAY=Y' ],
		[ { ALWAYS_USE_RELAY => 'y' }, 'hbbs', 'rustdesk_always_use_relay on;',
			qr/always/, 'ALWAYS_USE_RELAY=y (any case)' ],
		[ { ALWAYS_USE_RELAY => 'N' }, 'hbbs', '', qr/always/,
			'ALWAYS_USE_RELAY=N: nothing' ],
		[ { DB_URL => 'data/peers.sqlite3' }, 'hbbs',
			"rustdesk_database $EMPTY/data/peers.sqlite3;", qr/database/,
			'DB_URL relative: in the working directory' ],
		[ { DB_URL => './db.sqlite3' }, 'hbbs',
			"rustdesk_database $EMPTY/db.sqlite3;", qr/database/,
			'DB_URL ./' ],
		[ { DB_URL => '/srv/db.sqlite3' }, 'hbbs',
			'rustdesk_database /srv/db.sqlite3;', qr/database/,
			'DB_URL absolute' ],
		[ { DB_URL => 'sqlite://./db_v2.sqlite3' }, 'hbbs',
			"rustdesk_database $EMPTY/db_v2.sqlite3;", qr/database/,
			'DB_URL sqlite:// (sqlx\'s form)' ],
		[ { DB_URL => 'sqlite::memory:' }, 'hbbs', 'rustdesk_database off;',
			qr/database/, 'DB_URL in memory: off' ],
		[ { SINGLE_BANDWIDTH => '256' }, 'hbbr',
			'rustdesk_relay_single_bandwidth 256;', qr/bandwidth|speed/,
			'SINGLE_BANDWIDTH' ],
		[ { TOTAL_BANDWIDTH => '2048.5' }, 'hbbr',
			'rustdesk_relay_total_bandwidth 2048.5;', qr/bandwidth|speed/,
			'TOTAL_BANDWIDTH' ],
		[ { LIMIT_SPEED => '0.5' }, 'hbbr', 'rustdesk_relay_limit_speed 0.5;',
			qr/bandwidth|speed/, 'LIMIT_SPEED' ],
		[ { DOWNGRADE_THRESHOLD => '0.9' }, 'hbbr',
			'rustdesk_relay_downgrade_threshold 0.9;', qr/downgrade/,
			'DOWNGRADE_THRESHOLD' ],
		[ { DOWNGRADE_START_CHECK => '600' }, 'hbbr',
			'rustdesk_relay_downgrade_start_check 600s;', qr/downgrade/,
			'DOWNGRADE_START_CHECK: seconds as an nginx time' ],
	);

	for my $c (@cases) {
		my ($env, $cmd, $want, $re, $name) = @$c;
		my $r = c($env, $cmd);
		is(d($r, $re), $want, "$name: $want") or diag($r->{err});

		next if $want eq '';

		# the last directive's comment names the variable (LOCAL_IP, not
		# MASK)
		my ($var) = grep { $_ ne 'MASK' || keys %$env == 1 } keys %$env;
		my $directive = (split /\|/, $want)[-1];
		like(comment_of($r, $directive), qr/environment: \Q$var\E\b/,
			"$name: the comment names environment: $var");
	}

	# the comment sits above the directive
	my $r = c({ SINGLE_BANDWIDTH => '256' }, 'hbbr');
	like(comment_of($r, 'rustdesk_relay_single_bandwidth'),
		qr/\(environment: SINGLE_BANDWIDTH\)/, 'comment above the directive');

	# a name in any case, - or _ alike
	for my $k (qw/ relay_servers RELAY-SERVERS Relay-Servers /) {
		is(d(c({ $k => 'x.example.com' }, 'hbbs'), qr/relay_servers/),
			'rustdesk_relay_servers x.example.com;', "environment: $k");
	}

	# hbbs's order among spellings: NAME-DASHED, NAME_UNDERSCORED, lower
	is(d(c({ 'relay-servers' => 'lower', RELAY_SERVERS => 'upper' }, 'hbbs'),
		qr/relay_servers/), 'rustdesk_relay_servers upper;',
		'RELAY_SERVERS before relay-servers, as hbbs looks');
	is(d(c({ 'RELAY-SERVERS' => 'dashed', RELAY_SERVERS => 'upper' }, 'hbbs'),
		qr/relay_servers/), 'rustdesk_relay_servers dashed;',
		'RELAY-SERVERS before RELAY_SERVERS');
}

###############################################################################

# Precedence: hbbs flag > --config > .env > environment; hbbr flag > .env >
# environment (hbbr has no --config)

{
	my $env = { PORT => '40000', RELAY_SERVERS => 'from-env',
		SINGLE_BANDWIDTH => '10', KEY => 'env-key' };
	my $dir = workdir('.env' => "# the servers' .env\nPORT=41000\n"
		. "relay-servers = \"from-dotenv\"\nsingle_bandwidth=20\n",
		'hbbs.ini' => "relay_servers=from-config\nport=42000\n"
			. "SINGLE_BANDWIDTH=5\n");

	my $r = conv($env, '-d', $dir, 'hbbs', 'hbbr');
	ok(ok_conv($r), '.env read') or diag($r->{err});
	is(d($r, qr/relay_servers|udp|single/),
		'rustdesk_relay_servers from-dotenv;|listen 41000 udp reuseport;'
		. '|rustdesk_relay_single_bandwidth 20;',
		'.env over the environment (both servers)');
	like(comment_of($r, 'rustdesk_relay_servers'), qr/\Q$dir\E\/\.env: relay-servers/,
		'.env: the comment names the file and the name');
	is(d($r, qr/^listen 4\d+ reuseport/),
		'listen 40999 reuseport;|listen 41000 reuseport;|listen 41002 reuseport;'
		. '|listen 41001 reuseport;|listen 41003 reuseport;',
		'PORT in .env: hbbs on it, hbbr on PORT + 1');

	$r = conv($env, '-d', $dir, 'hbbs -c hbbs.ini', 'hbbr');
	is(d($r, qr/relay_servers|udp/),
		'rustdesk_relay_servers from-config;|listen 42000 udp reuseport;',
		'hbbs --config over .env');
	is(d($r, qr/^listen 41001|single/), 'rustdesk_relay_single_bandwidth 20;'
		. '|listen 41001 reuseport;', 'hbbs --config does not change hbbr');
	like($r->{err}, qr/hbbs\.ini:\ SINGLE_BANDWIDTH:\ hbbr's\ setting,\ and\ hbbr
		\ does\ not\ read\ hbbs's\ --config\ file:\ ignored/x,
		'hbbr\'s setting in hbbs --config: a note');

	$r = conv($env, '-d', $dir, 'hbbs --config=hbbs.ini -r from-flag -p 43000',
		'hbbr -p 44000');
	is(d($r, qr/relay_servers|udp|^listen 44000/),
		'rustdesk_relay_servers from-flag;|listen 43000 udp reuseport;'
		. '|listen 44000 reuseport;', 'flags over everything');

	$r = conv($env, '-d', $EMPTY, 'hbbs', 'hbbr');
	is(d($r, qr/relay_servers|udp|single|^listen 40001/),
		'rustdesk_relay_servers from-env;|listen 40000 udp reuseport;'
		. '|rustdesk_relay_single_bandwidth 10;|listen 40001 reuseport;',
		'the environment when nothing else: hbbr on PORT + 1');
	is(d($r, qr/rustdesk_key /), 'rustdesk_key env-key;',
		'KEY in the environment: both servers');

	$r = conv({}, '-d', $EMPTY, 'hbbs', 'hbbr -c x.ini');
	fails($r, qr/hbbr: unknown flag -c/, 'hbbr has no --config');

	# hbbr: PORT that is not positive is ignored (21117); -p wins over PORT
	$r = c({ PORT => '0' }, 'hbbr');
	is(d($r, qr/^listen 21117/), 'listen 21117 reuseport;',
		'hbbr: PORT=0 ignored, as hbbr does');
	like($r->{err}, qr/PORT=0: hbbr ignores/, 'hbbr: PORT=0: a note');
	is(d(c({ PORT => '30000' }, 'hbbr -p 30500'), qr/^listen 305/),
		'listen 30500 reuseport;|listen 30502 reuseport;', 'hbbr -p over PORT');

	# .env parsed as rust-ini does
	$dir = workdir('.env' => "KEY = 'quoted key' \nSERIAL: 3\n"
		. "SOFTWARE_URL=a\\x0041b\n[section]\nRMEM=99\n");
	$r = conv({}, '-d', $dir, 'hbbs');
	is(d($r, qr/rustdesk_key |serial|software|rcvbuf/),
		'rustdesk_key "quoted key";|rustdesk_serial 3;'
		. '|rustdesk_software_url aAb;', '.env: quotes, ":", escapes');
	like($r->{err}, qr/RMEM is in section \[section\].*ignored/,
		'.env: a [section] is not read: a note');

	$dir = workdir('.env' => "PORT=5\n  # indented\n");
	fails(conv({}, '-d', $dir, 'hbbs'),
		qr/\.env:\ line\ 2:\ a\ comment\ must\ start\ its\ line
			\ \(hbbs\ and\ hbbr\ would\ ignore\ the\ whole\ file\)/x,
		'.env that rust-ini cannot read: an error');

	$dir = workdir('.env' => "DATABASE_URL=sqlite://./db_v2.sqlite3\nFOO=1\n"
		. "SINGLE_BANDWIDTH=5\n");
	$r = conv({}, '-d', $dir, 'hbbs');
	like($r->{err}, qr/DATABASE_URL is used only when rustdesk-server is compiled/,
		'.env: DATABASE_URL explained');
	like($r->{err}, qr/FOO: not a setting of hbbs or hbbr: ignored/,
		'.env: an unknown name: a note');
	like($r->{err}, qr/SINGLE_BANDWIDTH: read by hbbr, which is not converted/,
		'.env: hbbr\'s setting with hbbs alone: a note');

	fails(conv({}, '-d', $EMPTY, 'hbbs -c missing.ini'),
		qr/hbbs -c missing\.ini: \Q$EMPTY\E\/missing\.ini: cannot read/,
		'--config file missing: an error');
}

###############################################################################

# Bandwidths hbbr ignores: no directive (0 would mean no limit), a note

{
	for my $c ([ SINGLE_BANDWIDTH => '0' ], [ TOTAL_BANDWIDTH => '0.0' ],
		[ LIMIT_SPEED => '-5' ], [ SINGLE_BANDWIDTH => 'fast' ],
		[ TOTAL_BANDWIDTH => '' ], [ DOWNGRADE_THRESHOLD => '0' ],
		[ DOWNGRADE_START_CHECK => '0' ], [ DOWNGRADE_START_CHECK => '1.5' ])
	{
		my ($k, $v) = @$c;
		my $r = c({ $k => $v }, 'hbbr');
		ok($r->{rc} == 0 && d($r, qr/^rustdesk_relay_(?!blacklist|blocklist)\w+ /)
			eq '' && $r->{err} =~ /environment: \Q$k=$v\E: hbbr ignores/,
			"$k=$v: no directive, a note") or diag($r->{err} . $r->{out});
	}

	is(d(c({ SINGLE_BANDWIDTH => 'inf' }, 'hbbr'), qr/single/),
		'rustdesk_relay_single_bandwidth 0;', 'SINGLE_BANDWIDTH=inf: no limit');
}

###############################################################################

# The key: one rustdesk_key for both modules

{
	my $sk = encode_base64(join('', map { chr } 0 .. 63), '');
	my $pk = encode_base64(join('', map { chr } 32 .. 63), '');
	my $dir = workdir('id_ed25519.pub' => "PUBKEY123=\n");

	my @cases = (
		[ [ 'hbbs', 'hbbr' ], '', 'both defaults: none' ],
		[ [ 'hbbs -k _', 'hbbr' ], '', 'hbbs -k _, hbbr default: none' ],
		[ [ 'hbbs', 'hbbr -k _' ], '_', 'hbbs default, hbbr -k _: _' ],
		[ [ 'hbbs -k -', 'hbbr -k _' ], '_', 'hbbs -k -, hbbr -k _: _' ],
		[ [ 'hbbs -k _', 'hbbr -k -' ], '_', 'hbbs -k _, hbbr -k -: _' ],
		[ [ 'hbbs -k same', 'hbbr -k same' ], 'same', 'the same string' ],
		[ [ 'hbbs -k ""', 'hbbr' ], '""', 'hbbs -k "", hbbr default: ""' ],
		[ [ 'hbbs -k ""', 'hbbr -k ""' ], '""', 'both empty: ""' ],
		[ [ "hbbs -k $sk", "hbbr -k $sk" ], $sk, 'the same secret key' ],
		[ [ "hbbs -k $sk", "hbbr -k $pk" ], $sk,
			'hbbr given the public half of hbbs\'s secret key' ],
		[ [ 'hbbs', 'hbbr -k PUBKEY123=' ], '_',
			'hbbr given the public key of the pair in the directory' ],
		[ [ 'hbbs -k _' ], '', 'hbbs alone, -k _: none (its default)' ],
		[ [ 'hbbs -k abc' ], 'abc', 'hbbs alone, -k abc' ],
		[ [ 'hbbr -k _' ], '_', 'hbbr alone, -k _' ],
		[ [ 'hbbr -k ""' ], '', 'hbbr alone, -k "": none (its default)' ],
	);

	for my $c (@cases) {
		my ($cmds, $want, $name) = @$c;
		my $r = conv({}, '-d', $dir, @$cmds);
		is(d($r, qr/^rustdesk_key /), $want eq '' ? '' : "rustdesk_key $want;",
			"key: $name") or diag($r->{err});
	}

	my $r = conv({}, '-d', $dir, 'hbbs -k abc', 'hbbr');
	fails($r, qr/the\ keys\ differ:\ hbbs's\ is\ abc\ \(hbbs\ -k\ abc\),
		\ hbbr's\ ""\ \(hbbr\ default,\ empty\);\ one\ nginx\ has\ one
		\ rustdesk_key\ for\ both\ servers,\ so\ the\ relay\ would\ check
		\ hbbs's\ key\ too:\ give\ hbbr\ the\ same\ key\ \(hbbr\ -k\ abc\)/x,
		'key: hbbs -k abc with hbbr\'s default: an error explaining why');
	fails(conv({}, '-d', $dir, 'hbbs -k abc', 'hbbr -k def'),
		qr/the keys differ.*give hbbs and hbbr the same -k/,
		'key: two different keys: an error');
	fails(conv({}, '-d', $dir, 'hbbs', 'hbbr -k abc'),
		qr/the keys differ: hbbs's is - \(hbbs default -\), hbbr's abc/,
		'key: hbbr -k abc with hbbs\'s default: an error');
	fails(conv({ KEY => 'abc' }, '-d', $dir, 'hbbs', 'hbbr -k def'),
		qr/hbbs's is abc \(environment: KEY=abc\)/,
		'key: the error names the variable');

	# the docker image's variables
	is(d(conv({ ENCRYPTED_ONLY => '1' }, '-d', $dir, 'hbbs', 'hbbr'),
		qr/^rustdesk_key /), 'rustdesk_key _;',
		'ENCRYPTED_ONLY=1: -k _ to both');
	$r = conv({ RELAY => 'relay.example.com:21117' }, '-d', $dir, 'hbbs');
	is(d($r, qr/relay_servers/), 'rustdesk_relay_servers relay.example.com:21117;',
		'RELAY: hbbs -r $RELAY');
	like(comment_of($r, 'rustdesk_relay_servers'), qr/RELAY=.*docker image/,
		'RELAY: named in the comment');
	fails(conv({ RELAY => 'a' }, '-d', $dir, 'hbbs -r b'),
		qr/environment:\ RELAY=a\ \(docker\ image:\ hbbs\ -r\ \$RELAY\)
			\ and\ hbbs\ -r\ 'b'\ disagree/x,
		'RELAY and another -r: an error');

	for my $k (qw/ KEY_PUB KEY_PRIV /) {
		fails(conv({ $k => 'x' }, '-d', $dir, 'hbbs'),
			qr/environment:\ $k\ is\ set:\ .*\Q$dir\E\/id_ed25519
				\ \(the\ secret\ key,\ mode\ 0600\)\ and
				\ \Q$dir\E\/id_ed25519\.pub/x,
			"$k: an error saying where the key files go");
	}
}

###############################################################################

# Notes for what has no directive

{
	my @cases = (
		[ { TEST_HBBS => 'no' }, 'hbbs', qr/TEST_HBBS=no: .*nginx checks its listeners/ ],
		[ { MAX_DATABASE_CONNECTIONS => '4' }, 'hbbs',
			qr/MAX_DATABASE_CONNECTIONS=4: .*thread pool/ ],
		[ { RUST_LOG => 'debug' }, 'hbbs', qr/RUST_LOG=debug: .*error_log/ ],
		[ { LOCAL_IP => '10.0.0.1' }, 'hbbs',
			qr/LOCAL_IP: hbbs reads LOCAL_IP only with MASK/ ],
		[ { MASK => '10.0.0.0/8' }, 'hbbs',
			qr/MASK\ is\ set\ without\ LOCAL_IP:\ hbbs\ offered\ LAN\ peers
				\ this\ host's\ own\ address/x ],
		[ { ALWAYS_USE_RELAY => 'yes' }, 'hbbs',
			qr/ALWAYS_USE_RELAY=yes: hbbs takes only Y: off/ ],
		[ { SERIAL => '-3' }, 'hbbs', qr/SERIAL: serial -3 is below/ ],
		[ { SINGLE_BANDWIDTH => '5' }, 'hbbs',
			qr/SINGLE_BANDWIDTH is read by hbbr, which is not converted/ ],
		[ { RELAY_SERVERS => 'x' }, 'hbbr',
			qr/RELAY_SERVERS is read by hbbs, which is not converted/ ],
	);

	for my $c (@cases) {
		my ($env, $cmd, $re) = @$c;
		my $r = c($env, $cmd);
		my ($k) = keys %$env;
		ok($r->{rc} == 0 && $r->{err} =~ $re
			&& d($r, qr/serial|local_ip|always|bandwidth|relay_servers/) eq '',
			"$k with $cmd: no directive, a note") or diag($r->{err});
	}
}

###############################################################################

# $VAR expansion, as docker compose does

{
	my $env = { RUSTDESK_HOST => 'rd.example.com', P => '30000' };

	is(d(c($env, 'hbbs -r ${RUSTDESK_HOST}:21117 -p $P'),
		qr/relay_servers|udp/), 'rustdesk_relay_servers rd.example.com:21117;'
		. '|listen 30000 udp reuseport;', '$VAR and ${VAR}');
	is(d(c({}, 'hbbs -r ${H:-dflt}:1 -k $$x'), qr/relay_servers|_key /),
		'rustdesk_key "$x";|rustdesk_relay_servers dflt:1;',
		'${VAR:-default} and $$');
	fails(c({}, 'hbbs -r ${RUSTDESK_HOST}:21117'),
		qr/\$RUSTDESK_HOST is not set in the environment/,
		'an unset variable: an error naming it');
	is(d(c({}, q{hbbs -u "a b" -k 'c d'}), qr/url|_key /),
		'rustdesk_key "c d";|rustdesk_software_url "a b";',
		'words split and quoted as a shell does');
}

###############################################################################

# Errors: exit status 2, the flag or variable named, nothing on stdout

{
	my @cases = (
		[ {}, [ 'hbbs --foo' ], qr/hbbs: unknown flag --foo/ ],
		[ {}, [ 'hbbs -x 1' ], qr/hbbs: unknown flag -x/ ],
		[ {}, [ 'hbbr -r a' ], qr/hbbr: unknown flag -r/ ],
		[ {}, [ 'hbbs --local-ip=1.2.3.4' ], qr/hbbs: unknown flag --local-ip/ ],
		[ {}, [ 'hbbs --Port=5' ], qr/hbbs: unknown flag --Port/ ],
		[ {}, [ 'hbbs -p' ], qr/hbbs: -p needs a value/ ],
		[ {}, [ 'hbbs --relay-servers' ], qr/hbbs: --relay-servers needs a value/ ],
		[ {}, [ 'hbbs -k -p 5' ], qr/hbbs: -k needs a value/ ],
		[ {}, [ 'hbbs -p 1 --port 2' ], qr/hbbs: --port given twice \(also as -p\)/ ],
		[ {}, [ 'hbbs extra' ], qr/hbbs: unexpected argument 'extra'/ ],
		[ {}, [ 'hbbs -p abc' ], qr/hbbs -p: 'abc' is not a port number/ ],
		[ {}, [ 'hbbs -p 2' ], qr/hbbs -p: port 2 is invalid: hbbs needs at least 3/ ],
		[ {}, [ 'hbbs -p 65534' ], qr/hbbs -p: port 65534 is too high/ ],
		[ { PORT => 'x' }, [ 'hbbs' ], qr/environment: PORT: 'x' is not a port number/ ],
		[ { PORT => 'x' }, [ 'hbbr' ], qr/environment: PORT: 'x' is not a port number/ ],
		[ {}, [ 'hbbr -p 0' ], qr/hbbr -p: port 0 is invalid/ ],
		[ {}, [ 'hbbr -p 70000' ], qr/hbbr -p: '70000' is not a port number/ ],
		[ {}, [ 'hbbr --port=-1' ], qr/hbbr --port: '-1' is not a port number/ ],
		[ {}, [ 'hbbs -b 1.2.3' ], qr/hbbs -b: '1.2.3' is not an IP address/ ],
		[ {}, [ 'hbbr --bind=localhost' ],
			qr/hbbr --bind: 'localhost' is not an IP address/ ],
		[ { BIND => '::1%lo' }, [ 'hbbs' ],
			qr/environment: BIND: '::1%lo' is not an IP address/ ],
		[ {}, [ 'hbbs -M lots' ], qr/hbbs -M: 'lots' is not a number of bytes/ ],
		[ { RMEM => '1k' }, [ 'hbbs' ], qr/environment: RMEM: '1k' is not a number/ ],
		[ {}, [ 'hbbs -s x' ], qr/hbbs -s: 'x' is not a serial number/ ],
		[ {}, [ 'hbbs --mask 10.0.0.0/33' ],
			qr/hbbs --mask: '10.0.0.0\/33' is not an IPv4 network/ ],
		[ { MASK => 'fd00::/8' }, [ 'hbbs' ],
			qr/environment: MASK: 'fd00::\/8' is not an IPv4 network/ ],
		[ {}, [ 'hbbs --mask 0.0.0.0/0' ],
			qr/takes in every IPv4 address: not supported/ ],
		[ {}, [ 'hbbs -r "a, b"' ], qr/hbbs -r: ' b' in 'a, b' is not a host\[:port\]/ ],
		[ { DB_URL => 'db?mode=ro' }, [ 'hbbs' ], qr/environment:
			\ DB_URL=db\?mode=ro:\ database\ URL\ parameters\ are\ not/x ],
		[ { DB_URL => '' }, [ 'hbbs' ], qr/environment: DB_URL is empty/ ],
		[ {}, [ 'hbbs -h' ], qr/hbbs: -h: hbbs would only print its help/ ],
		[ {}, [ 'hbbr --version' ],
			qr/hbbr: --version: hbbr would only print its version/ ],
		[ {}, [ 'hbbs -p 21117', 'hbbr' ], qr/port\ 21117\ is\ both\ hbbs's
			\ port\ \(hbbs\ -p\ 21117\)\ and\ hbbr's\ port/x ],
		[ {}, [ 'nginx' ], qr/'nginx': the command is not hbbs or hbbr/ ],
		[ {}, [ 'hbbs', 'hbbs' ], qr/a second hbbs command line/ ],
		[ {}, [ 'hbbs -k "x' ], qr/unterminated quote/ ],
		[ {}, [ '--frob', 'hbbs' ], qr/unknown option --frob/ ],
		[ {}, [ ], qr/no hbbs or hbbr command line given/ ],
	);

	for my $c (@cases) {
		my ($env, $cmds, $re) = @$c;
		fails(conv($env, '-d', $EMPTY, @$cmds), $re,
			'error: ' . (join(' + ', map { "'$_'" } @$cmds) || 'no command')
			. join('', map { " with $_=$env->{$_}" } sort keys %$env));
	}
}

# the working directory: a file is an error, an absent one a note

fails(conv({}, '-d', $SCRIPT, 'hbbs'), qr/\Q$SCRIPT\E \(-d\) is not a directory/,
	'error: -d names a file');
like(conv({}, '-d', "$TMP/absent", 'hbbs')->{err},
	qr/absent does not exist \(yet\): no \.env, blacklist\.txt or blocklist/,
	'-d names an absent directory: a note');

###############################################################################

# The lists: in the directory, the relay reads them

{
	my $dir = workdir('blacklist.txt' => "10.0.0.1\n",
		'blocklist.txt' => "10.0.0.2 spam\n");

	is(d(conv({}, '-d', $dir, 'hbbr'), qr/^rustdesk_relay_b/),
		"rustdesk_relay_blacklist $dir/blacklist.txt;"
		. "|rustdesk_relay_blocklist $dir/blocklist.txt;",
		'blacklist.txt and blocklist.txt present: read by the relay');
	unlike(conv({}, '-d', $dir, 'hbbs')->{out}, qr/rustdesk_relay_b/,
		'hbbs alone: no relay lists');
}

###############################################################################

# nginx -t: everything at once, each module alone, --nginx-conf

{
	my $data = $t->testdir() . '/data-t';
	mkdir $data;
	open(my $bl, ">", "$data/blacklist.txt") or die "blacklist.txt: $!\n";
	close $bl;

	my $r = conv({ MASK => '192.168.0.0/16', LOCAL_IP => '192.168.1.1',
		ALWAYS_USE_RELAY => 'Y', SINGLE_BANDWIDTH => '64',
		TOTAL_BANDWIDTH => '512', LIMIT_SPEED => '16',
		DOWNGRADE_THRESHOLD => '0.8', DOWNGRADE_START_CHECK => '900',
		DB_URL => 'peers.sqlite3' }, '-d', $data,
		'hbbs -b 127.0.0.1 -p 30116 -k _ -r 127.0.0.1:30117,127.0.0.1 -s 3 '
		. '-R 127.0.0.1 -u https://example.com/rustdesk-1.3.0.exe -M 65536',
		'hbbr -b 127.0.0.1 -p 30117 -k _');
	ok(ok_conv($r), 'every directive at once: converted') or diag($r->{err});

	$t->write_file('all.conf', $t->test_globals() . $r->{out});
	my ($rc, $out) = $t->test_config('all.conf');
	is($rc, 0, 'every directive at once: nginx -t') or diag($out);

	$r = conv({ SERIAL => '1' }, '-d', $data, 'hbbs -k ""');
	$t->modules('rendezvous');
	$t->write_file('hbbs.conf', $t->test_globals() . $r->{out});
	($rc, $out) = $t->test_config('hbbs.conf');
	is($rc, 0, 'hbbs alone, rendezvous module alone: nginx -t') or diag($out);

	$r = conv({ LIMIT_SPEED => '8' }, '-d', $data, 'hbbr -k ""');
	$t->modules('relay');
	$t->write_file('hbbr.conf', $t->test_globals() . $r->{out});
	($rc, $out) = $t->test_config('hbbr.conf');
	is($rc, 0, 'hbbr alone, relay module alone: nginx -t') or diag($out);
	$t->modules('rendezvous', 'relay');

	# IPv6: an address, and "::" dual-stack as hbbs and hbbr bind it
	$r = conv({}, '-d', $data, 'hbbs -b :: -p 30116', 'hbbr -b ::1 -p 30117');
	$t->write_file('ipv6.conf', $t->test_globals() . $r->{out});
	($rc, $out) = $t->test_config('ipv6.conf');
	is($rc, 0, 'IPv6 bind addresses, ipv6only=off for "::": nginx -t')
		or diag($out);

	# the whole file, with only the harness's module paths and pid
	$r = conv({}, '--nginx-conf', '-d', $data, 'hbbs -k _', 'hbbr -k _');
	my $conf = $r->{out};
	my $d = $t->testdir();
	$conf =~ s{^load_module modules/ngx_stream_module\.so;}
		{load_module $Test::Nginx::STREAM_MODULE;\npid $d/nginx-t.pid;}m;
	$conf =~ s{^load_module modules/(ngx_stream_rustdesk_\w+\.so);}
		{load_module $Test::Nginx::MODULES/$1;}mg;
	$t->write_file('whole.conf', $conf);
	($rc, $out) = $t->test_config('whole.conf');
	is($rc, 0, '--nginx-conf: nginx -t') or diag($out);
}

###############################################################################

# Running: a generated configuration serves a relayed session

sub start {
	my ($r) = @_;
	$t->stop();
	$t->write_file('nginx.conf', $t->test_globals() . $r->{out});
	$t->run();
}

{
	my $data = $t->testdir() . '/data';
	my $n = port_base(-1, 0, 2, 4);
	my $q;
	do { $q = port_base(0, 2, 4) } while abs($q - $n) < 8;

	my $r = conv({}, '-d', $data, "hbbs -b 127.0.0.1 -p $n -k _",
		"hbbr --bind=127.0.0.1 --port=$q -k _");
	ok(ok_conv($r), 'hbbs -k _, hbbr -k _ on free loopback ports: converted')
		or diag($r->{err});

	start($r);

	my $key = $t->read_file('data/id_ed25519.pub');
	is(length $key, 44, 'nginx made the key pair in the working directory');

	is(RustDesk::Session::relayed_session(host => '127.0.0.1',
		rendezvous_port => $n, relay_port => $q, key => $key), '',
		'registration, relay request and relayed session served');

	is(RustDesk::Session::relay_refused(host => '127.0.0.1', relay_port => $q,
		key => 'wrong' . $key), '', 'a relay client with a wrong key is refused');

	my $why = RustDesk::Session::relayed_session(host => '127.0.0.1',
		rendezvous_port => $n, relay_port => $q, key => $key,
		relay_key => 'not-the-key');
	like($why, qr/^relay: B to A: (?:eof|reset)/,
		'a session whose relay sides present a wrong key fails at the relay');
	note("with a wrong relay key: $why");

	like(console($n + 4, 'h'), qr/relay-servers/, 'hbbs console on port + 4');
	like(console($q + 4, 'h'), qr/blacklist-add/, 'hbbr console on port + 4');

	# one PORT and BIND for both, the keys' defaults: hbbs on PORT, hbbr on
	# PORT + 1, the relay checks no key
	$n = port_base(-1, 0, 1, 2, 3, 4, 5);

	$r = conv({ PORT => $n, BIND => '127.0.0.1' }, '-d', $data, 'hbbs', 'hbbr');
	is(d($r, qr/^rustdesk_key |^listen 127\.0\.0\.1:\d+ reuseport/),
		join('|', map { "listen 127.0.0.1:$_ reuseport;" }
			$n - 1, $n, $n + 2, $n + 1, $n + 3),
		'PORT and BIND in the environment: hbbr on PORT + 1, no rustdesk_key');

	start($r);

	is(RustDesk::Session::relayed_session(host => '127.0.0.1',
		rendezvous_port => $n, relay_port => $n + 1, key => $key,
		relay_key => ''), '',
		'hbbs on PORT, hbbr on PORT + 1: a relayed session, the relay '
		. 'checking no key');
}
