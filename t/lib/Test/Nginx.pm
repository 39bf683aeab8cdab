package Test::Nginx;

# A small harness in the style of nginx-tests' Test::Nginx: a private nginx
# per test file, started from a generated nginx.conf on free loopback ports,
# stopped at the end, with its error log checked for [alert], [crit] and
# [emerg] lines and for worker processes that died.
#
#     my $t = Test::Nginx->new()->plan(3);
#     $t->write_file_expand('nginx.conf', <<'EOF');
#     %%TEST_GLOBALS%%
#     stream { server { listen 127.0.0.1:%%PORT_0%%; ... } }
#     EOF
#     $t->run();
#
# Placeholders: %%TEST_GLOBALS%% (load_module lines, worker_processes 2,
# pid, error_log, events), %%PORT_n%% (a TCP and UDP port free at run
# time), %%TESTDIR%%, %%STREAM%%, %%RENDEZVOUS%% and %%RELAY%% (module
# paths, for configurations that load modules themselves).

use warnings;
use strict;

use Exporter qw/ import /;
use File::Temp qw/ tempdir /;
use IO::Socket::INET;
use POSIX qw/ :sys_wait_h /;
use Scalar::Util qw/ blessed /;
use Socket qw/ SOCK_STREAM SOCK_DGRAM inet_aton inet_ntoa /;
use Test::More ();
use Time::HiRes qw/ sleep time /;
use Cwd qw/ abs_path /;
use File::Basename qw/ dirname /;

our @EXPORT_OK = qw/ port port_base wait_until wait_value background
	background_result host_address /;

our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $MODULES = $ENV{TEST_NGINX_MODULES} || "$ROOT/build";
our $STREAM_MODULE = $ENV{TEST_NGINX_STREAM_MODULE}
	|| '/usr/lib/nginx/modules/ngx_stream_module.so';

# Seconds an nginx of a test may live at most: it runs in the foreground
# under timeout(1), so a test that dies or is killed leaves none behind.
our $LIFE = $ENV{TEST_NGINX_LIFE} || 600;

my %ports;
my $current;

sub new {
	my ($class) = @_;

	my $self = bless {}, $class;

	$self->{_testdir} = tempdir('rustdesk-test-XXXXXXXXXX', TMPDIR => 1,
		CLEANUP => !$ENV{TEST_NGINX_LEAVE});
	chmod 0755, $self->{_testdir};

	# the prefix's logs/: "nginx -t" opens the pid file, which for an
	# nginx built with the default paths (not Debian's /run/nginx.pid)
	# is logs/nginx.pid in the prefix
	mkdir "$self->{_testdir}/logs";

	$self->{_modules} = [ qw/ rendezvous relay / ];
	$self->{_allowed} = [];

	$current = $self;
	return $self;
}

sub DESTROY {
	my ($self) = @_;
	local $?;

	$self->stop() if $self->{_started};
	$self->check_log() if $self->{_planned} && !$self->{_checked};
}

sub testdir { $_[0]->{_testdir} }

# Which of our modules %%TEST_GLOBALS%% loads: 'rendezvous', 'relay' or both.
sub modules {
	my ($self, @m) = @_;
	$self->{_modules} = [ @m ];
	return $self;
}

# Other dynamic modules (paths of .so files) %%TEST_GLOBALS%% loads after
# the stream module and ours: e.g. Debian's geoip2 module.
sub load_modules {
	my ($self, @so) = @_;
	$self->{_extra_modules} = [ @so ];
	return $self;
}

# Room for more connections than the default 1024 a worker: %%TEST_GLOBALS%%
# gets worker_connections n and worker_rlimit_nofile (default 2 n).
sub connections {
	my ($self, $n, $nofile) = @_;
	$self->{_connections} = [ $n, $nofile // 2 * $n ];
	return $self;
}

# Skips the whole file unless the built modules and nginx are there.
sub has {
	my ($self, @what) = @_;

	for my $m (@{$self->{_modules}}) {
		my $so = "$MODULES/ngx_stream_rustdesk_${m}_module.so";
		Test::More::plan(skip_all => "no $so: run make") unless -f $so;
	}

	Test::More::plan(skip_all => "no $NGINX") unless -x $NGINX;
	return $self;
}

# Plans n tests plus the error log check that stop() adds.
sub plan {
	my ($self, $n) = @_;
	Test::More::plan(tests => $n + 1);
	$self->{_planned} = 1;
	return $self;
}

# An [alert]/[crit]/[emerg] line matching the pattern does not fail the log
# check (e.g. a worker the test killed on purpose).
sub allow_log {
	my ($self, $re) = @_;
	push @{$self->{_allowed}}, $re;
	return $self;
}

# A random port for a listener, below the kernel's range of ephemeral
# ports (net.ipv4.ip_local_port_range), from which every client socket of
# every test takes its port: a listener's port taken from that range may
# be in use by a client by the time nginx binds it.
sub random_listen_port {
	my $low = 32768;

	if (open my $f, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
		($low) = split ' ', scalar <$f>;
		close $f;
	}

	$low = 32768 unless defined $low && $low > 12000;

	return 10000 + int(rand($low - 100 - 10000));
}

sub port {
	my ($n) = @_;

	return $ports{$n} if defined $ports{$n};

	# free on the loopback addresses tests listen on (127.0.0.2 and .3
	# for the hosts of a cluster), where clients of other tests also bind

	PORT: for (1 .. 1000) {
		my $port = random_listen_port();
		next if grep { $_ == $port } values %ports;

		for my $ip (qw/ 127.0.0.1 127.0.0.2 127.0.0.3 /) {
			my $tcp = IO::Socket::INET->new(LocalAddr => $ip,
				LocalPort => $port, Proto => 'tcp', ReuseAddr => 1)
				or next PORT;
			my $udp = IO::Socket::INET->new(LocalAddr => $ip,
				LocalPort => $port, Proto => 'udp') or next PORT;
			close $tcp;
			close $udp;
		}

		return $ports{$n} = $port;
	}

	die "no free port\n";
}

# A base port with base + each offset free on 127.0.0.1 (TCP, and UDP at
# the base): for configurations that derive ports from one, as hbbs does
# (port - 1, port, port + 2).
sub port_base {
	my (@offsets) = @_;

	BASE: for (1 .. 200) {
		my $base = random_listen_port();
		my @held;

		for my $off (@offsets) {
			next BASE if grep { $_ == $base + $off } values %ports;

			my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
				LocalPort => $base + $off, Proto => 'tcp', ReuseAddr => 1)
				or next BASE;
			push @held, $s;
		}

		IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $base,
			Proto => 'udp') or next;

		return $base;
	}

	die "no free ports\n";
}

sub test_globals {
	my ($self) = @_;
	my $d = $self->{_testdir};

	my $s = "load_module $STREAM_MODULE;\n";
	$s .= "load_module $MODULES/ngx_stream_rustdesk_${_}_module.so;\n"
		for @{$self->{_modules}};
	$s .= "load_module $_;\n" for @{$self->{_extra_modules} // []};

	my ($conns, $nofile) = @{$self->{_connections} // [ 1024 ]};

	$s .= "worker_processes 2;\n";
	$s .= "worker_rlimit_nofile $nofile;\n" if $nofile;
	$s .= <<"END";
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections $conns; }
END

	return $s;
}

sub expand {
	my ($self, $content) = @_;

	$content =~ s/%%TEST_GLOBALS%%/$self->test_globals()/ge;
	$content =~ s/%%TESTDIR%%/$self->{_testdir}/g;
	$content =~ s/%%STREAM%%/$STREAM_MODULE/g;
	$content =~ s{%%(RENDEZVOUS|RELAY)%%}
		{"$MODULES/ngx_stream_rustdesk_" . lc($1) . "_module.so"}ge;
	$content =~ s/%%PORT_(\d+)%%/port($1)/ge;

	return $content;
}

sub write_file {
	my ($self, $name, $content) = @_;

	open my $fh, '>', "$self->{_testdir}/$name"
		or die "Can't create $name: $!";
	binmode $fh;
	print $fh $content;
	close $fh;

	return $self;
}

sub write_file_expand {
	my ($self, $name, $content) = @_;
	return $self->write_file($name, $self->expand($content));
}

sub read_file {
	my ($self, $name) = @_;

	open my $fh, '<', "$self->{_testdir}/$name" or return '';
	binmode $fh;
	local $/;
	my $content = <$fh>;
	close $fh;

	return $content;
}

# The server's public key (base64) in a key directory (default keys), as
# its .pub file has it, without the line end.
sub key {
	my ($self, $dir) = @_;
	my $key = $self->read_file(($dir // 'keys') . '/id_ed25519.pub');
	$key =~ s/\s+$//;
	return $key;
}

# How many times the pattern matches in error.log (or in $log, a copy of
# it read before).
sub log_count {
	my ($self, $re, $log) = @_;
	$log //= $self->read_file('error.log');
	my $n = () = $log =~ /$re/g;
	return $n;
}

# Waits until the pattern matches n times (default 1) in error.log, or
# the timeout (default 3 s) is over: returns the count then.
sub wait_log {
	my ($self, $re, $n, $timeout) = @_;
	my $end = time() + ($timeout // 3);
	my $got;

	while (($got = $self->log_count($re)) < ($n // 1) && time() < $end) {
		sleep 0.05;
	}

	return $got;
}

# Calls $f until it returns true or the timeout (default 5 s) is over, a
# short while between calls: returns what $f returned last, so false on
# timeout (and the assertion that follows fails with what was there).
# A function (wait_until(sub { ... }, 3)) or a method ($t->wait_until(...)).
sub wait_until {
	shift if blessed($_[0]) && $_[0]->isa(__PACKAGE__);
	my ($f, $timeout, $interval) = @_;
	my $end = time() + ($timeout // 5);

	for (;;) {
		my $r = $f->();
		return $r if $r || time() >= $end;
		sleep($interval // 0.02);
	}
}

# Calls $f until it returns $want (as a string) or the timeout (default
# 5 s) is over: returns what $f returned last.
sub wait_value {
	shift if blessed($_[0]) && $_[0]->isa(__PACKAGE__);
	my ($f, $want, $timeout) = @_;
	my $got;

	wait_until(sub { ($got = $f->()) eq $want }, $timeout);
	return $got;
}

# A sub run in a child process, for what must go on while the test does
# something else (a client with a pace of its own, a wait that is timed):
# background_result() waits for it to end and returns the list of strings
# it returned (or the error it died with).
sub background {
	my ($f) = @_;

	pipe(my $rd, my $wr) or die "pipe: $!\n";
	my $pid = fork() // die "fork: $!\n";

	if ($pid == 0) {
		close $rd;
		my @r = eval { $f->() };
		@r = ("error: $@") if $@;
		print $wr pack('(N/a*)*', map { $_ // '' } @r);
		close $wr;

		# no END blocks: they would stop nginx
		POSIX::_exit(0);
	}

	close $wr;
	return { pid => $pid, fh => $rd };
}

sub background_result {
	my ($bg) = @_;
	my $fh = $bg->{fh};

	local $/;
	my $all = <$fh> // '';
	close $fh;
	waitpid($bg->{pid}, 0);

	return unpack('(N/a*)*', $all);
}

# The kernel's TCP sockets (IPv4) that match, listening or established:
# local and remote ("ip:port"; "0.0.0.0:0" the remote of a listener), state
# ('listen' or 'established'), rx (the receive queue: bytes not read yet;
# for a listener, connections not accepted yet) and inode (0 for a
# connection still in a listener's queue).  Options: local, remote (an
# "ip:port" to match).  From sock_diag (netlink), which leaves out the
# thousands in TIME-WAIT that test runs leave, or else /proc/net/tcp.
sub tcp_sockets {
	my ($self, %o) = @_;

	my $all = _sock_diag((1 << 10) | (1 << 1))
		// [ grep { $_->{state} =~ /^(?:listen|established)$/ }
			_proc_net('tcp') ];

	return grep {
		(!defined $o{local} || $_->{local} eq $o{local})
		&& (!defined $o{remote} || $_->{remote} eq $o{remote})
	} @$all;
}

# The UDP sockets (IPv4) that match, from /proc/net/udp: local, remote and
# rx (bytes waiting to be read).  Options: local, remote.
sub udp_sockets {
	my ($self, %o) = @_;

	return grep {
		(!defined $o{local} || $_->{local} eq $o{local})
		&& (!defined $o{remote} || $_->{remote} eq $o{remote})
	} _proc_net('udp');
}

# Bytes a client sent on a TCP connection that the server has not read yet:
# the receive queue of the server's end of it ($c: a socket, or an object
# with sock(), connected over IPv4); undef when that end is not found.
sub unread {
	my ($self, $c) = @_;
	my $s = $c->isa('IO::Handle') ? $c : $c->sock();
	my @id = ($s->peerhost(), $s->peerport(), $s->sockhost(), $s->sockport());

	my $found = _sock_diag(0, \@id) // [ grep {
		$_->{local} eq "$id[0]:$id[1]" && $_->{remote} eq "$id[2]:$id[3]"
	} _proc_net('tcp') ];

	return @$found ? $found->[0]{rx} : undef;
}

# sock_diag's answer (SOCK_DIAG_BY_FAMILY, inet_diag_req_v2, TCP over IPv4)
# for the states in the mask, or for one connection ([ local ip, port,
# remote ip, port ]): a list of sockets as tcp_sockets() has them, undef
# when netlink does not answer.
sub _sock_diag {
	my ($states, $one) = @_;

	socket(my $nl, 16, SOCK_DGRAM, 4) or return undef;  # NETLINK_SOCK_DIAG

	my $id = $one
		? pack('nna16a16LLL', $one->[1], $one->[3], inet_aton($one->[0]),
			inet_aton($one->[2]), 0, 0xFFFFFFFF, 0xFFFFFFFF)
		: pack('x48');
	my $req = pack('CCCxL', 2, 6, 0, $one ? 0xFFFFFFFF : $states) . $id;

	# NLM_F_REQUEST, and NLM_F_DUMP unless one
	send($nl, pack('LSSLL', 16 + length $req, 20, $one ? 1 : 0x301, 1, 0)
		. $req, 0, pack('SSLL', 16, 0, 0, 0)) or return undef;

	my @s;

	for (;;) {
		defined recv($nl, my $buf, 1 << 20, 0) or return undef;

		while (length $buf >= 16) {
			my ($len, $type) = unpack('LS', $buf);
			last if $len < 16 || $len > length $buf;

			my $msg = substr($buf, 16, $len - 16);
			substr($buf, 0, ($len + 3) & ~3) = '';

			return \@s if $type == 3;                   # done

			if ($type == 2) {                           # error
				my $err = unpack('l', $msg);
				return $err == 0 || ($one && $err == -2) ? \@s : undef;
			}

			next unless $type == 20;

			my ($state, $sport, $dport, $src, $dst, $rq, $inode)
				= unpack('xCxxnna4x12a4x12x12x4Lx4x4L', $msg);

			push @s, { local => inet_ntoa($src) . ":$sport",
				remote => inet_ntoa($dst) . ":$dport",
				state => $state == 10 ? 'listen'
					: $state == 1 ? 'established' : $state,
				rx => $rq, inode => $inode };
		}

		return \@s if $one;
	}
}

# An IPv4 address of this host outside 127.0.0.0/8, undef if it has none:
# what a test sends from to look like a client from elsewhere (to nginx on
# 127.0.0.1 still).  Read from the kernel's local routes, which names each
# address of the host as a "/32 host LOCAL" leaf; nothing is sent.
sub host_address {
	my $ip;

	open my $fh, '<', '/proc/net/fib_trie' or return undef;

	while (my $line = <$fh>) {
		if ($line =~ /\|-- (\d+\.\d+\.\d+\.\d+)/) {
			$ip = $1;

		} elsif ($line =~ m!/32 host LOCAL! && $ip && $ip !~ /^127\./) {
			close $fh;
			return $ip;
		}
	}

	close $fh;
	return undef;
}

# The sockets of /proc/net/tcp or /proc/net/udp (IPv4), as tcp_sockets()
# has them.
sub _proc_net {
	my ($proto) = @_;
	my @s;

	open my $fh, '<', "/proc/net/$proto" or return ();
	<$fh>;

	while (my $line = <$fh>) {
		my @f = split ' ', $line;
		my ($local, $remote) = map {
			my ($ip, $port) = split /:/;
			inet_ntoa(pack('L', hex $ip)) . ':' . hex($port)
		} @f[1, 2];
		my $state = hex $f[3];

		push @s, { local => $local, remote => $remote,
			state => $state == 10 ? 'listen'
				: $state == 1 ? 'established' : $state,
			rx => hex((split /:/, $f[4])[1]), inode => $f[9] };
	}

	close $fh;
	return @s;
}

# Waits until the server has read everything the client sent so far on
# the connection (see unread()), the timeout (default 3 s) at most:
# true if it has.  What a test that sends a message in pieces waits for
# between the pieces, so that each piece is a read of its own.
sub wait_read {
	my ($self, $c, $timeout) = @_;

	# not found: closed, nothing to wait for
	return wait_until(sub { !$self->unread($c) }, $timeout // 3, 0.002);
}

# The worker that accepted each client, from the info line nginx logs for
# every session: "ip:port" (a TCP client) or "udp ip:port" => worker pid,
# the last session wins.
sub client_workers {
	my ($self) = @_;
	my $log = $self->read_file('error.log');
	my %w;

	$w{($2 // '') . $3} = $1 while $log
		=~ /(\d+)#\d+: \*\d+ (udp )?client ([\d.]+:\d+) connected/g;

	return %w;
}

# The worker that accepted a client (a RustDesk::Client or a socket), 0
# if the log does not say.
sub worker_of {
	my ($self, $c) = @_;
	my $s = $c->isa('RustDesk::Client') ? $c->sock() : $c;
	my $udp = $s->socktype() == SOCK_DGRAM ? 'udp ' : '';
	my %w = $self->client_workers();
	return $w{$udp . $s->sockhost() . ':' . $s->sockport()} // 0;
}

# Of pairs of clients ([ "ip:port", "ip:port" ], as client_workers() has
# them): (how many were accepted by different workers, how many by a
# worker the log does not say).
sub split_pairs {
	my ($self, @pairs) = @_;
	my %wk = $self->client_workers();

	my $split = grep { ($wk{$_->[0]} // 0) != ($wk{$_->[1]} // -1) } @pairs;
	my $unknown = grep { !$wk{$_->[0]} || !$wk{$_->[1]} } @pairs;

	return ($split, $unknown);
}

# nginx -t with a configuration file of the test directory (default
# nginx.conf): returns (exit code, everything nginx said).  Its messages go
# to a log of their own, so that an expected [emerg] does not fail the
# error log check.
sub test_config {
	my ($self, $name) = @_;
	my $d = $self->{_testdir};

	$name //= 'nginx.conf';
	unlink "$d/$name.log";

	my $out = `$NGINX -p $d/ -c $name -e $d/$name.log -t 2>&1`;
	my $rc = $? >> 8;

	return ($rc, $out . $self->read_file("$name.log"));
}

sub run {
	my ($self) = @_;
	my $d = $self->{_testdir};

	die "nginx is already running\n" if $self->{_started};

	# a pid file left by a killed nginx is not taken for the new one's
	unlink "$d/nginx.pid";

	my $pid = fork();
	die "Unable to fork(): $!\n" unless defined $pid;

	if ($pid == 0) {
		open STDOUT, '>>', "$d/stderr" or die;
		open STDERR, '>>', "$d/stderr" or die;
		exec('timeout', '-k', '5', $LIFE, $NGINX, '-p', "$d/",
			'-c', 'nginx.conf', '-e', "$d/error.log", '-g', 'daemon off;')
			or die "Unable to exec(): $!\n";
	}

	# up when the master has written its pid; a failed start exits

	my $end = time() + 10;
	my $up = 0;

	while (time() < $end) {
		if (-s "$d/nginx.pid") {
			$up = 1;
			last;
		}

		last if waitpid($pid, WNOHANG) == $pid;
		sleep 0.05;
	}

	unless ($up) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
		die "Can't start nginx: " . $self->read_file('stderr')
			. $self->read_file('error.log');
	}

	$self->{_child} = $pid;
	$self->{_started} = 1;
	$self->wait_for_ports();

	# the pid file and the listeners exist before the workers do
	my ($n) = $self->read_file('nginx.conf') =~ /worker_processes\s+(\d+)/;
	$n //= 1;

	for (1 .. 100) {
		my @workers = $self->worker_pids();
		last if @workers >= $n;
		select undef, undef, undef, 0.05;
	}

	return $self;
}

# Stops nginx if it runs, writes the configuration (expanded) as
# nginx.conf and starts it.
sub restart {
	my ($self, $conf) = @_;

	$self->stop();
	$self->write_file_expand('nginx.conf', $conf);
	return $self->run();
}

sub master_pid {
	my ($self) = @_;
	my $pid = $self->read_file('nginx.pid');
	chomp $pid;
	return $pid;
}

# Worker pids (children of the master), from /proc.
sub worker_pids {
	my ($self) = @_;
	my $master = $self->master_pid();
	my @pids;

	for my $stat (glob '/proc/[0-9]*/stat') {
		open my $fh, '<', $stat or next;
		my $line = <$fh> // '';
		close $fh;
		next unless $line =~ /^(\d+) \((.*)\) \S (\d+)/;
		my ($pid, $comm, $ppid) = ($1, $2, $3);
		push @pids, $pid if $ppid == $master && $comm =~ /nginx/;
	}

	return sort { $a <=> $b } @pids;
}

# Descriptors the workers hold (/proc/<pid>/fd): all of them, or those
# whose link matches the pattern (e.g. qr/^socket:/).
sub worker_fds {
	my ($self, $re) = @_;
	my $n = 0;

	for my $pid ($self->worker_pids()) {
		opendir(my $dh, "/proc/$pid/fd") or next;
		for my $fd (grep { /^\d+$/ } readdir $dh) {
			next if $re
				&& (readlink("/proc/$pid/fd/$fd") // '') !~ $re;
			$n++;
		}
		closedir $dh;
	}

	return $n;
}

# worker_fds() once it stays the same for 0.3 s (5 s at most).
sub stable_fds {
	my ($self, $re) = @_;
	my $end = time() + 5;
	my $last = $self->worker_fds($re);

	while (time() < $end) {
		sleep 0.3;
		my $now = $self->worker_fds($re);
		return $now if $now == $last;
		$last = $now;
	}

	return $last;
}

# Polls worker_fds() until it is at most ('<=') or at least ('>=') a value,
# or the timeout is over: returns the last count.
sub wait_fds {
	my ($self, $cmp, $want, $timeout, $re) = @_;
	my $end = time() + $timeout;

	for (;;) {
		my $n = $self->worker_fds($re);
		return $n if $cmp eq '<=' ? $n <= $want : $n >= $want;
		return $n if time() >= $end;
		sleep 0.05;
	}
}

sub wait_for_file {
	my ($self, $file, $timeout) = @_;
	my $end = time() + ($timeout || 10);

	while (time() < $end) {
		return 1 if -e $file && -s $file;
		sleep 0.05;
	}

	return 0;
}

# Waits until every TCP port named in the configuration (on a loopback
# address, 127.0.0.x) accepts.
sub wait_for_ports {
	my ($self) = @_;
	my $conf = $self->read_file('nginx.conf');

	while ($conf =~ /listen\s+(127\.0\.0\.\d+):(\d+)([^;]*);/g) {
		my ($ip, $port, $opts) = ($1, $2, $3);
		next if $opts =~ /\budp\b/;

		my $end = time() + 10;
		while (time() < $end) {
			my $s = IO::Socket::INET->new(PeerAddr => "$ip:$port",
				Proto => 'tcp');
			if ($s) { close $s; last; }
			sleep 0.05;
		}
	}
}

# Sends a signal to the master and waits for the reload to finish: new
# workers up, old ones gone.
sub reload {
	my ($self) = @_;
	my @old = $self->worker_pids();

	$self->{_reload_old} = [ @old ];
	kill 'HUP', $self->master_pid();

	my $end = time() + 15;
	while (time() < $end) {
		my %now = map { $_ => 1 } $self->worker_pids();
		last unless grep { $now{$_} } @old;
		sleep 0.1;
	}

	$self->wait_for_ports();
	return $self;
}

# After reload(): "n/m", n of the m workers there now new since it began.
sub replaced {
	my ($self) = @_;
	my %old = map { $_ => 1 } @{$self->{_reload_old} // []};
	my @now = $self->worker_pids();
	return scalar(grep { !$old{$_} } @now) . '/' . scalar(@now);
}

# Kills a worker (SIGKILL) and waits (10 s at most) until the master has
# replaced it: returns the worker pids then.
sub kill_worker {
	my ($self, $pid) = @_;
	my $n = () = $self->worker_pids();
	my @now;

	kill 'KILL', $pid;

	my $end = time() + 10;
	while (time() < $end) {
		@now = $self->worker_pids();
		last if @now == $n && !grep { $_ == $pid } @now;
		sleep 0.1;
	}

	return @now;
}

sub stop {
	my ($self) = @_;

	return $self unless $self->{_started};

	my $pid = $self->master_pid();

	if ($pid && kill(0, $pid)) {
		kill 'QUIT', $pid;

		my $end = time() + 15;
		while (time() < $end && kill(0, $pid)) {
			sleep 0.05;
		}

		if (kill(0, $pid)) {
			kill 'KILL', $pid;
			$self->{_stop_failed} = 1;
		}
	}

	# timeout(1) ends with its nginx
	waitpid($self->{_child}, 0) if $self->{_child};
	delete $self->{_child};

	$self->{_started} = 0;
	return $self;
}

# The last test of every file: nothing went wrong in the error log.
sub check_log {
	my ($self) = @_;

	$self->{_checked} = 1;
	$self->stop();

	my @bad = grep {
		my $line = $_;
		!grep { $line =~ $_ } @{$self->{_allowed}}
	} $self->read_file('error.log')
		=~ /^.*(?:\[alert\]|\[crit\]|\[emerg\]|exited on signal).*$/mg;

	push @bad, 'nginx did not stop on QUIT' if $self->{_stop_failed};

	Test::More::is(join("\n", @bad), '', 'no alerts in error log');
}

END {
	$current->check_log()
		if $current && $current->{_planned} && !$current->{_checked};
}

1;
