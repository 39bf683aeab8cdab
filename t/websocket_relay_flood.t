#!/usr/bin/perl

# A WebSocket relay client that floods its pair with pings and never reads
# the pongs (RFC 6455 section 5.5.3; PROTOCOL.md section 2): once pongs
# back up only the latest ping is answered, so what the worker holds for
# that connection stays bounded; another pair on the same worker keeps
# relaying while the flood is read, and the flooding pair still works
# afterwards.
#
# The relay's sockets get a small send buffer (sndbuf=16k), so that pongs
# back up once the flooding client's receive buffer is full.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port background background_result /;
use RustDesk::Conf;
use RustDesk::Client qw/ encode_msg /;
use RustDesk::WebSocket;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->modules('relay')->has()->plan(7);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_single_bandwidth 0;',
	'rustdesk_relay_total_bandwidth 0;',
], srv_block([ '127.0.0.1:%%PORT_1%% sndbuf=16k reuseport' ],
	'rustdesk_relay websocket;')));

$t->run();

my $PINGS = 16384;                      # 2 MiB of pings, 125-byte payloads

###############################################################################

# the flooding pair, and another pair forwarded by the same worker (a pair
# lives in the worker of its first side)

my ($fa, $fb) = pair('flood');
my $worker = $t->worker_of($fa->sock());

my ($oa, $ob);

for my $i (1 .. 40) {
	my $x = first("other-$i");

	if ($t->worker_of($x->sock()) == $worker) {
		$oa = $x;
		$ob = second("other-$i");
		last;
	}

	$x->close();
}

ok($oa && $ob, 'a second pair on the worker of the flooding one')
	or BAIL_OUT('no second pair on the same worker');

my $rss = rss($worker);

# the flood, written by a child process as fast as the relay reads it

my $bg = background(sub {
	my $all = join('', map { RustDesk::WebSocket->frame(0x9, payload($_)) }
		1 .. $PINGS);
	return $fa->send_raw($all) ? 'sent' : "write: $!";
});

# meanwhile, round trips on the other pair

my $trips = 0;

for my $i (1 .. 20) {
	$oa->send_binary("there $i");
	my (undef, $got) = $ob->recv_message(10);
	next unless ($got // '') eq "there $i";

	$ob->send_binary("back $i");
	(undef, $got) = $oa->recv_message(10);
	$trips++ if ($got // '') eq "back $i";
}

is($trips, 20, 'the other pair on that worker: 20 round trips during the '
	. 'flood');

is(join(' ', background_result($bg)), 'sent', 'the flood is written');

# what the worker holds for the flooding connection once it has read all

$t->wait_read($fa, 60);
my $grown = rss($worker) - $rss;

ok($grown < 1024 * 1024, 'the worker\'s memory after the flood: bounded')
	or diag("the worker grew by $grown bytes for 2 MiB of pings");

# the pongs: fewer than the pings, the latest ping's last

my ($pongs, $last) = (0, '');

while (my ($op, $payload) = $fa->recv_frame(3)) {
	next unless $op == 0xA;
	$pongs++;
	$last = $payload;
}

ok($pongs > 0 && $pongs < $PINGS, 'pongs that backed up are coalesced')
	or diag("$pongs pongs for $PINGS pings");
note("$pongs pongs for $PINGS pings; the worker grew by $grown bytes");
is(substr($last, 0, 8), substr(payload($PINGS), 0, 8),
	'the latest ping is answered');

# the flooding pair itself still relays

$fa->send_binary('after the flood');
my (undef, $got) = $fb->recv_message(10);
is($got // 'nothing', 'after the flood', 'the flooding pair still relays');

###############################################################################

sub payload {
	my ($n) = @_;
	return sprintf('%08d', $n) . ('p' x 117);
}

sub first {
	my ($uuid) = @_;
	my $x = RustDesk::WebSocket->connect(port(1));
	$x->send_msg(request_relay => { uuid => $uuid });
	$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 5);
	return $x;
}

sub second {
	my ($uuid) = @_;
	my $y = RustDesk::WebSocket->connect(port(1));
	$y->send_msg(request_relay => { uuid => $uuid });
	$t->wait_log(qr/relay "\Q$uuid\E" paired/, 1, 5);
	return $y;
}

sub pair {
	my ($uuid) = @_;
	return (first($uuid), second($uuid));
}

# A process's resident memory (bytes), from /proc.

sub rss {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/status" or return 0;
	my ($kb) = join('', <$fh>) =~ /^VmRSS:\s+(\d+)/m;
	close $fh;
	return ($kb // 0) * 1024;
}

###############################################################################
