#!/usr/bin/perl

# WebSocket relay pairs and their control frames (PROTOCOL.md section 2):
# a ping from either side of an idle pair is answered; a message sent as
# thousands of one-byte fragments arrives whole; the upgrade request, the
# RequestRelay and the first data in one write lose nothing.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ encode_msg /;
use RustDesk::WebSocket;

my $t = Test::Nginx->new()->modules('relay')->has()->plan(6);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_single_bandwidth 0;',
	'rustdesk_relay_total_bandwidth 0;',
], srv_relay(1, how => 'websocket')));

$t->run();

# 1. pings on an idle pair, from the first and from the second side

my ($a, $b) = pair('ctl-1');

$a->send_frame(0x9, 'from-a');
my ($op, $payload) = $a->recv_frame(3);
is(($op // 'none') . ' ' . ($payload // ''), '10 from-a',
	'idle pair: the first side\'s ping answered');

$b->send_frame(0x9, 'from-b');
($op, $payload) = $b->recv_frame(3);
is(($op // 'none') . ' ' . ($payload // ''), '10 from-b',
	'idle pair: the second side\'s ping answered');

# 2. one message in 20,000 one-byte fragments

my $msg = join('', map { chr(65 + $_ % 26) } 0 .. 19_999);
my $frames = RustDesk::WebSocket->frame(0x2, substr($msg, 0, 1), fin => 0);
$frames .= RustDesk::WebSocket->frame(0x0, substr($msg, $_, 1),
	fin => $_ == length($msg) - 1) for 1 .. length($msg) - 1;
$a->send_raw($frames);

($op, $payload) = $b->recv_message(10);
is(($op // 'none') . ' ' . length($payload // ''), '2 20000',
	'20,000 one-byte fragments: one message');
ok(defined $payload && $payload eq $msg, 'fragments: the bytes in order');

# 3. upgrade, RequestRelay and data in a single write

my $w = RustDesk::WebSocket->connect(port(1));
my $c = RustDesk::WebSocket->socket(port(1));
my $one = bless { sock => $c, in => '' }, 'RustDesk::WebSocket';
my $key = 'dGhlIHNhbXBsZSBub25jZQ==';

$w->send_binary(encode_msg(request_relay => { uuid => 'ctl-2' }));
$t->wait_log(qr/new relay request "ctl-2"/, 1, 3);

$one->send_raw($one->request($key, path => '/ws/relay')
	. RustDesk::WebSocket->frame(0x2,
		encode_msg(request_relay => { uuid => 'ctl-2' }))
	. RustDesk::WebSocket->frame(0x2, 'right after'));

my $answer = $one->read_answer();
like($answer, qr{^HTTP/1\.1 101 }, 'one write: upgraded');

($op, $payload) = $w->recv_message(3);
is(($op // 'none') . ' ' . ($payload // ''), '2 right after',
	'one write: the data after the request relayed');

###############################################################################

sub pair {
	my ($uuid) = @_;

	my $x = RustDesk::WebSocket->connect(port(1));
	$x->send_binary(encode_msg(request_relay => { uuid => $uuid }));
	$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 3);

	my $y = RustDesk::WebSocket->connect(port(1));
	$y->send_binary(encode_msg(request_relay => { uuid => $uuid }));
	$t->wait_log(qr/relay "\Q$uuid\E" paired/, 1, 3);

	return ($x, $y);
}

###############################################################################
