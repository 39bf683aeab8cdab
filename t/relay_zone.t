#!/usr/bin/perl

# The relay's shared state under pressure (PROTOCOL.md section 7,
# DESIGN.md "Cross-worker delivery"): hundreds of pairs made at once, so
# that descriptors handed to the other worker queue up behind its
# channel's datagram limit; a waiting client that sends bytes and closes;
# a zone too small for all the waiting clients.

use warnings;
use strict;

use Test::More;
use List::Util qw/ sum /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Relay qw/ side read_exact /;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->modules('relay')->has()->plan(12)
	->allow_log(qr/relay zone is full/);

# room for the 1500 connections below

$t->connections(4096)->write_file_expand('nginx.conf', stream_conf([
	'# 8 pages: room for a few hundred waiting clients only',
	'rustdesk_relay_zone small:32k;',
	'rustdesk_relay_pair_timeout 5s;',
], srv_relay(0)));

$t->run();

my $PORT = port(0);

###############################################################################

# 1. 120 pairs at once: every first side waits, then every second side
# comes; about half land on the other worker

my $N = 120;
my (@a, @b);

push @a, side($PORT, "burst-$_") for 1 .. $N;
$t->wait_log(qr/new relay request "burst-\d+"/, $N, 10);

# one worker stops for a moment (as a busy worker would): the other one
# hands it dozens of descriptors meanwhile, far more than the 10 datagrams
# a Unix socket queues by default, and they must wait, not be refused

my ($stopped) = $t->worker_pids();
kill 'STOP', $stopped;

push @b, side($PORT, "burst-$_", extra => "b$_.") for 1 .. $N;

# until the other worker has done all it can: its listener's queue empty,
# and every second side it accepted read (paired, or handed over); those
# of the stopped worker wait in its listener's queue

wait_until(sub {
	my @all = $t->tcp_sockets(local => "127.0.0.1:$PORT");
	my @queues = map { $_->{rx} } grep { $_->{state} eq 'listen' } @all;
	my %end = map { $_->{remote} => $_ } grep { $_->{state} ne 'listen' } @all;
	my @ends = grep { defined }
		map { $end{$_->sock()->sockhost() . ':' . $_->sockport()} } @b;
	my @accepted = grep { $_->{inode} } @ends;

	return (grep { $_ == 0 } @queues) && @ends == $N
		&& @accepted + sum(0, @queues) == $N
		&& !grep { $_->{rx} } @accepted;
}, 10);

kill 'CONT', $stopped;

my $paired = 0;
for my $i (1 .. $N) {
	my $want = "b$i.";
	my ($got) = read_exact($a[$i - 1], length $want, 5);
	$paired++ if defined $got && $got eq $want;
}

is($paired, $N, "burst of $N pairs: all paired and relaying");

my $log = $t->read_file('error.log');
my $across = () = $log =~ /paired with a connection from worker/g;
note("$across of $N pairs joined across workers");
ok($across > 20, "burst: pairs joined across workers ($across)");
unlike($log, qr/refused|full|dropped/, 'burst: nothing refused or dropped');

$_->close() for @a, @b;
@a = @b = ();

###############################################################################

# 2. a waiting client that sent bytes after its request and then closed is
# let go at once, not at the pair timeout

{
	my $c = side($PORT, 'gone-1', extra => 'early bytes');
	$t->wait_log(qr/new relay request "gone-1"/, 1, 3);
	$c->close();

	ok($t->wait_log(qr/relay client of "gone-1" left before its partner came/,
		1, 2), 'waiter that sent bytes and closed: let go before the timeout');

	# and its uuid is free again at once
	my $x = side($PORT, 'gone-1');
	$t->wait_log(qr/new relay request "gone-1"/, 2, 3);
	my $y = side($PORT, 'gone-1', extra => 'again');
	my ($got) = read_exact($x, 5, 3);
	is($got, 'again', 'its uuid pairs again at once');
}

###############################################################################

# 3. a zone too small for all the waiting clients: the ones that do not fit
# are refused with a warning, the others wait; once they are gone the zone
# serves again

{
	my @w = map { side($PORT, sprintf('zone-%04d-%s', $_, 'x' x 40)) }
		1 .. 1500;

	my ($full, $waiting);

	wait_until(sub {
		my $log = $t->read_file('error.log');
		$full = () = $log =~ /relay zone is full, relay request "zone-/g;
		$waiting = () = $log =~ /new relay request "zone-/g;
		return $full + $waiting >= 1500;
	}, 10);

	note("zone: $waiting waiting, $full refused");
	ok($full > 0, 'small zone: requests refused when full');
	ok($waiting > 50, 'small zone: many waited');
	is($full + $waiting, 1500, 'small zone: every request waited or was '
		. 'refused');

	$_->close() for @w;
	$t->wait_log(qr/relay client of "zone-\d+-x+" left before/, $waiting, 10);

	my $x = side($PORT, 'after-zone');
	$t->wait_log(qr/new relay request "after-zone"/, 1, 3);
	my $y = side($PORT, 'after-zone', extra => 'fits');
	my ($got) = read_exact($x, 4, 3);
	is($got, 'fits', 'small zone: pairs again once the waiting ones left');
}

###############################################################################

my @w = $t->worker_pids();
is(scalar @w, 2, 'both workers alive');

# 4. a list file that cannot be read: a warning, and the relay starts with
# the list as it is

$t->write_file_expand('missing.conf', <<'EOF');
load_module %%STREAM%%;
load_module %%RELAY%%;
error_log %%TESTDIR%%/missing.conf.log info;
events {}
stream {
    rustdesk_relay_zone missing:64k;
    rustdesk_relay_blacklist %%TESTDIR%%/no-such-blacklist.txt;
    server { listen 127.0.0.1:%%PORT_1%%; rustdesk_relay; }
}
EOF

my ($rc, $out) = $t->test_config('missing.conf');
is($rc, 0, 'missing blacklist file: the configuration is accepted');
like($out, qr/\[warn\].*cannot open blacklist ".*no-such-blacklist\.txt"/,
	'missing blacklist file: a warning names it');

###############################################################################
