#!/usr/bin/perl

# The worker channel (DESIGN.md "Cross-worker delivery"): each worker's
# Unix datagram socket, "<module>.<master>.<pid>", lives in a directory
# that only nginx's worker user can enter (rustdesk_channel_dir, by default
# "ngx_rustdesk" beside the pid file), so that no other user can take a
# worker's name or write to one.
#
# 1. the directory: made by the master, mode 0700, owned by the worker
#    user, one name per module and worker, removed when a worker exits
# 2. (root) another user who binds the names of the next pids, in the
#    directory (refused) and in Linux's abstract namespace (where the
#    channel once lived), stops no worker from starting at a reload
# 3. (root) a worker killed: another user can neither bind its name nor
#    write to a live worker's, and never receives a relay client's
#    descriptor; the killed worker's entries in the zone are skipped,
#    pairs split across the workers relay; the next reload removes its
#    name
# 4. directories refused, with the reason, by "nginx -t" and by a reload
#    (which leaves the running workers alone): open to others, a symbolic
#    link, (root) another user's, in a directory others can write to, a
#    path too long for a socket name

use warnings;
use strict;

use Test::More;
use IO::Select;
use POSIX ();
use Socket qw/ AF_UNIX SOCK_DGRAM pack_sockaddr_un /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port background background_result /;
use RustDesk::Conf;
use RustDesk::Relay qw/ side transfer /;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->has()->plan(29)
	->allow_log(qr/exited on signal 9\b/)
	->allow_log(qr/\[emerg\].*channel directory .*\/open-reload"/);

my $d = $t->testdir();
my $ROOT = $> == 0;

my @STREAM = ('rustdesk_key_dir %%TESTDIR%%/keys;', 'rustdesk_database off;',
	'rustdesk_relay_single_bandwidth 0;', 'rustdesk_relay_total_bandwidth 0;',
	'rustdesk_relay_pair_timeout 10s;');

my $CONF = stream_conf([ @STREAM ], srv_hbbs(1, 0), srv_relay(2));
my $RELAY = port(2);

$t->write_file_expand('nginx.conf', $CONF);
$t->run();

my $dir = "$d/ngx_rustdesk";

###############################################################################

# 1. the default directory and the names in it

{
	my @w = $t->worker_pids();
	my $m = $t->master_pid();
	my @st = lstat $dir;
	my $wuid = worker_uid($w[0]);

	ok(@st && -d _ && ($st[2] & 07777) == 0700 && $st[4] == $wuid,
		'the directory beside the pid file: mode 0700, the worker user\'s')
		or diag(@st ? sprintf('mode %04o uid %d, worker uid %d',
			$st[2] & 07777, $st[4], $wuid) : "no $dir");

	is(join(' ', names()), join(' ', sort map {
			my $pid = $_; map { "$_.$m.$pid" } qw/ relay rendezvous /
		} @w), 'one socket per module and worker, named after both pids');

	ok(!(grep { !-S "$dir/$_" } names()), 'each of them a socket');

	$t->reload();

	my %old = map { $_ => 1 } @w;
	is(join(' ', grep { /\.(\d+)$/ && $old{$1} } names()), '',
		'workers that exited removed their names');
	is(scalar(names()), 4, 'the new workers\' names are there');
}

###############################################################################

# 2. before a reload, another user binds the names of the pids to come:
# in the directory (refused: it cannot enter it) and in the abstract
# namespace (which the channel does not use any more)

SKIP: {
	skip 'another user\'s process needs root', 5 unless $ROOT;

	my $m = $t->master_pid();
	my $other = other_uid();
	my $last = last_pid();

	my $bg = as_user($other, sub {
		my ($ready, $stop) = @_;
		my (@held, %err);
		my $in_dir = 0;

		for my $pid ($last + 1 .. $last + 1000) {
			for my $mod (qw/ relay rendezvous /) {
				socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or last;

				if (bind($s, pack_sockaddr_un("$dir/$mod.$m.$pid"))) {
					$in_dir++;
					push @held, $s;
				} else {
					$err{$!}++;
				}

				socket(my $a, AF_UNIX, SOCK_DGRAM, 0) or last;
				push @held, $a if bind($a,
					pack_sockaddr_un("\0ngx_rustdesk/$mod/$m/$pid"));
			}
		}

		# the old channel's names, and a file in the directory

		my $abstract = @held - $in_dir;
		my $file = open(my $fh, '>', "$dir/relay.$m." . ($last + 5)) ? 1 : 0;

		print $ready "ready\n";
		close $ready;
		<$stop>;

		return ($in_dir, join(',', map { "$_ x$err{$_}" } sort keys %err),
			$abstract, $file);
	});

	$t->reload();
	my @after = $t->worker_pids();

	my ($in_dir, $errs, $abstract, $file) = as_user_result($bg);
	note("another user held $abstract abstract names for pids "
		. ($last + 1) . ' to ' . ($last + 1000));

	is("$in_dir $file", '0 0',
		'another user binds no name in the directory, makes no file there')
		or diag("errors: $errs");
	like($errs, qr/^Permission denied x\d+$/, 'refused: permission denied');

	ok(!(grep { $_ <= $last || $_ > $last + 1000 } @after),
		'the new workers\' pids were among those it held')
		or diag("held from $last, workers @after");
	is($t->replaced(), '2/2', 'reload: two new workers all the same');
	is($t->log_count(qr/fatal code|cannot be respawned|bind\(\) of the/), 0,
		'no worker failed to start');
}

###############################################################################

# 3. a worker killed with relay clients waiting on it: another user cannot
# take its name (nor write to a live worker), and gets no descriptor on
# the abstract name it would have had; the clients' uuids and new pairs,
# split across the workers, relay

SKIP: {
	skip 'another user\'s process needs root', 10 unless $ROOT;

	my ($victim, $survivor) = $t->worker_pids();
	my $m = $t->master_pid();

	my @waiters;

	for my $i (1 .. 60) {
		last if @waiters == 3;
		my $uuid = "dead-wait-$i";
		my $c = side($RELAY, $uuid, ip => '127.0.0.4');
		$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 2);
		if ($t->worker_of($c) == $victim) {
			push @waiters, [ $uuid, $c ];
		} else {
			$c->close();
		}
	}

	is(scalar(@waiters), 3, '3 relay clients waiting on the worker to kill');

	my @now = $t->kill_worker($victim);
	my ($new) = grep { $_ != $survivor } @now;
	ok(@now == 2 && $new, 'killed worker replaced');

	my $dead = "$dir/relay.$m.$victim";
	ok(-S $dead, 'the killed worker\'s name is left in the directory');

	my $bg = as_user(other_uid(), sub {
		my ($ready, $stop) = @_;
		my @r;

		socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
		push @r, bind($s, pack_sockaddr_un($dead)) ? 'bound' : "$!";
		push @r, unlink($dead) ? 'removed' : "$!";

		socket(my $c, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
		push @r, connect($c, pack_sockaddr_un("$dir/relay.$m.$survivor"))
			? 'connected' : "$!";

		# the name the channel used to have: whatever comes to it

		socket(my $a, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
		my $abstract = bind($a,
			pack_sockaddr_un("\0ngx_rustdesk/relay/$m/$victim"));

		print $ready "ready\n";
		close $ready;

		my $sel = IO::Select->new($a, $stop);
		my $got = 0;

		while (my @can = $sel->can_read(20)) {
			last if grep { $_ == $stop } @can;
			recv($a, my $buf, 65536, 0);
			$got++;
		}

		return (@r, $abstract ? 'abstract bound' : "abstract: $!", $got);
	});

	my @pairs = ((map { {
		port => $RELAY, uuid => $_->[0],
		a => { len => 300_000, ip => '127.0.0.2' },
		b => { len => 300_000, ip => '127.0.0.3', start => 0.3 },
	} } @waiters), (map { {
		port => $RELAY, uuid => "after-kill-$_",
		a => { len => 300_000, ip => '127.0.0.2' },
		b => { len => 300_000, ip => '127.0.0.3', start => 0.05 * ($_ % 3) },
	} } 1 .. 20));

	my $r = transfer(pairs => \@pairs, timeout => 20);
	my @res = as_user_result($bg);

	is(join(', ', @res[0 .. 2]),
		'Permission denied, Permission denied, Permission denied',
		'another user can neither bind nor remove the killed worker\'s '
		. 'name, nor write to a live worker');
	is("$res[3], $res[4]", 'abstract bound, 0',
		'its abstract name of the killed worker received nothing');

	is(join("\n", map { $_->{err} } grep { !$_->{ok} } @$r), '',
		'the waiters\' uuids and 20 new pairs relay, SHA-256 checked');

	my $uuids = join('|', map { quotemeta $_->[0] } @waiters);
	is($t->log_count(qr/"(?:$uuids)" was in worker $victim, which is gone/),
		3, 'each of the killed worker\'s entries was found and skipped');

	my $cross = $t->log_count(
		qr/relay "after-kill-\d+" paired with a connection from worker/);
	ok($cross > 0, "pairs split across the workers ($cross of 20)");

	$_->[1]->close() for @waiters;

	$t->reload();

	ok(!-e $dead, 'the next reload removed the killed worker\'s name');
	is(scalar(names()), 4, 'and left the new workers\' names');
}

###############################################################################

# 4. directories that are refused

{
	$t->write_file_expand('bad.conf', $CONF);

	my $conf = sub {
		my ($path) = @_;
		my $c = $t->read_file('bad.conf');
		$c =~ s/(stream \{\n)/$1    rustdesk_channel_dir $path;\n/;

		# what it says after reading the file goes to its own log
		$c =~ s/error_log \S+/error_log $d\/test.conf.log/;
		$t->write_file('test.conf', $c);
		return $t->test_config('test.conf');
	};

	mkdir "$d/open";
	chmod 0777, "$d/open";

	my ($rc, $out) = $conf->("$d/open");
	ok($rc && $out =~ /channel directory "\Q$d\E\/open" is open to group or others \(mode 0777\): it must be private/,
		'open to others: refused') or diag($out);

	symlink("$d/keys", "$d/link");
	($rc, $out) = $conf->("$d/link");
	ok($rc && $out =~ /channel directory "\Q$d\E\/link" is not a directory/,
		'a symbolic link: refused') or diag($out);

	mkdir "$d/shared";
	chmod 0777, "$d/shared";
	($rc, $out) = $conf->("$d/shared/channel");
	ok($rc && $out =~ /the parent "\Q$d\E\/shared" of the channel directory .* is writable by group or others \(mode 0777\) and not sticky/,
		'in a directory others can write to: refused') or diag($out);

	($rc, $out) = $conf->("$d/" . ('x' x 80));
	ok($rc && $out =~ /is too long for a socket name/,
		'too long for a socket name: refused') or diag($out);

	($rc, $out) = $conf->("$d/fresh/");
	my @st = lstat "$d/fresh";
	ok(!$rc && @st && ($st[2] & 07777) == 0700
		&& $st[4] == worker_uid(($t->worker_pids())[0]),
		'rustdesk_channel_dir: made, private to the worker user') or diag($out);

	SKIP: {
		skip 'another user\'s directory needs root', 1 unless $ROOT;

		my $other = other_uid();
		mkdir "$d/theirs", 0700;
		chown $other, $other, "$d/theirs";

		($rc, $out) = $conf->("$d/theirs");
		ok($rc && $out =~ /channel directory "\Q$d\E\/theirs" belongs to uid $other, not to nginx's worker user/,
			'another user\'s directory: refused') or diag($out);
	}

	# a reload with one: refused, the workers go on

	mkdir "$d/open-reload";
	chmod 0777, "$d/open-reload";

	my @before = $t->worker_pids();
	my $c = $t->read_file('bad.conf');
	$c =~ s/(stream \{\n)/$1    rustdesk_channel_dir $d\/open-reload;\n/;
	$t->write_file('nginx.conf', $c);

	kill 'HUP', $t->master_pid();

	ok($t->wait_log(qr/\[emerg\].*channel directory "\Q$d\E\/open-reload" is open to group or others/),
		'reload: refused with the reason');
	is(join(' ', $t->worker_pids()), join(' ', @before),
		'reload: the running workers go on');

	my $res = transfer(pairs => [ map { {
		port => $RELAY, uuid => "after-refusal-$_",
		a => { len => 100_000, ip => '127.0.0.2' },
		b => { len => 100_000, ip => '127.0.0.3', start => 0.05 },
	} } 1 .. 4 ], timeout => 10);
	is(join("\n", map { $_->{err} } grep { !$_->{ok} } @$res), '',
		'reload: the running workers still relay');
}

###############################################################################

# The names in the directory, sorted (as root: the test reads it whoever
# owns it).
sub names {
	opendir(my $dh, $dir) or return ();
	my @n = sort grep { !/^\./ } readdir $dh;
	closedir $dh;
	return @n;
}

sub worker_uid {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/status" or return -1;
	my ($uid) = join('', <$fh>) =~ /^Uid:\s+(\d+)/m;
	return $uid // -1;
}

# A uid that is neither root nor the workers' and has no account: a local
# user with no rights at all.
sub other_uid {
	my $w = worker_uid(($t->worker_pids())[0]);

	for my $uid (47000 .. 47999) {
		return $uid if $uid != $w && !defined getpwuid($uid);
	}

	die "no free uid\n";
}

# The last pid the kernel gave out.
sub last_pid {
	open my $fh, '<', '/proc/sys/kernel/ns_last_pid' or die "ns_last_pid: $!\n";
	my $pid = <$fh>;
	chomp $pid;
	return $pid;
}

# Runs $f (with a pipe to write "ready" to and one that closes when the
# test is done) in a child process that has become uid (and gid) $uid;
# returns once it is ready.
sub as_user {
	my ($uid, $f) = @_;

	pipe(my $ready_r, my $ready_w) or die "pipe: $!\n";
	pipe(my $stop_r, my $stop_w) or die "pipe: $!\n";

	my $bg = background(sub {
		close $ready_r;
		close $stop_w;

		$) = "$uid $uid";
		POSIX::setgid($uid) or die "setgid: $!\n";
		POSIX::setuid($uid) or die "setuid: $!\n";
		die "still uid $<\n" unless $< == $uid && $> == $uid;

		return $f->($ready_w, $stop_r);
	});

	close $ready_w;
	close $stop_r;

	<$ready_r>;
	close $ready_r;

	$bg->{stop} = $stop_w;
	return $bg;
}

sub as_user_result {
	my ($bg) = @_;
	close $bg->{stop};
	return background_result($bg);
}

###############################################################################
