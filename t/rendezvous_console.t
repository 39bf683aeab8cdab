#!/usr/bin/perl

# The rendezvous console: rustdesk-server's loopback commands with the same
# output, on a listener of its own (loopback clients only) or on the
# NAT-test port for loopback clients when asked; changes reach all workers.

use warnings;
use strict;

use Test::More;
use IO::Socket::INET;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;

my $t = Test::Nginx->new()->has()->plan(28)
	->allow_log(qr/untrusted PROXY header/);

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_relay_servers 127.0.0.1:%%PORT_3%%;',
], srv_rendezvous(1), srv_nat_test(0, console => 1), srv_console(2),

	# the client address as a trusted proxy declares it
	srv_console(4, proxy => 1),

	# behind the PROXY protocol, no proxy trusted
	srv_block([ '127.0.0.1:%%PORT_5%% proxy_protocol' ], 'rustdesk_console;'),

	srv_blank(3)));

$t->run();

my $key = $t->read_file('keys/id_ed25519.pub');

is(cmd('h'), "relay-servers(rs) <separated by ,>\nreload-geo(rg)\n"
	. "ip-blocker(ib) [<ip>|<number>] [-]\nip-changes(ic) [<id>|<number>] [-]\n"
	. "punch-requests(pr) [<number>] [-]\nalways-use-relay(aur)\n"
	. "test-geo(tg) <ip1> <ip2>\n", 'help');

is(cmd('rs'), '127.0.0.1:' . port(3) . "\n", 'relay servers');
is(cmd("aur\n"), "ALWAYS_USE_RELAY: false\n", 'always-use-relay off');
is(cmd('bogus'), '', 'unknown command: nothing');
is(cmd(''), '', 'no command: nothing');

# registrations show in the IP blocker, punch requests in their log

my $u = RustDesk::Client->udp(port(1), LocalAddr => '127.0.0.1');
for my $id (qw/ console1 console2 console3 /) {
	$u->send_msg(register_pk => { id => $id, uuid => 'u', pk => 'k' x 32 });
	$u->recv_msg();
}
$u->send_msg(register_peer => { id => 'console1' });
$u->recv_msg();

like(cmd('ib'), qr/^1\n127\.0\.0\.1: 2\/\d+s 2\/\d+s\n$/, 'ip-blocker list');
like(cmd('ib 127.0.0.1'), qr/^1\n2\/\d+s 2\/\d+s\n$/, 'ip-blocker entry');
is(cmd('ib 127.0.0.1 -'), "1\n2/0s 2/0s\n", 'ip-blocker remove');
is(cmd('ib'), "0\n", 'ip-blocker emptied');

my $a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => 'console1', licence_key => $key });
my ($type) = $u->recv_msg();
is($type, 'punch_hole', 'punch hole delivered');

# the same requester and id within a minute are logged once

$a->send_msg(punch_hole_request => { id => 'console1', licence_key => $key });
$u->recv_msg();

like(cmd('pr'), qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 127\.0\.0\.2 -> console1\@127\.0\.0\.1\n$/,
	'punch requests');
is(cmd('pr -'), '', 'punch requests cleared');
is(cmd('pr'), '', 'punch requests empty');

# changes reach every worker: ask several times, from new connections

cmd('aur Y');
is(join('', map { cmd('aur') } 1 .. 6), "ALWAYS_USE_RELAY: true\n" x 6,
	'always-use-relay on in all workers');

$a->send_msg(punch_hole_request => { id => 'console1', licence_key => $key,
	nat_type => 1 });
my ($t2, $m) = $u->recv_msg();
is($m->{nat_type}, 2, 'always-use-relay forces symmetric NAT');

cmd('rs a.example:1,b.example:2');
is(cmd('rs'), "a.example:1\nb.example:2\n", 'relay servers set');
like(cmd('tg 1.2.3.4 5.6.7.8'), qr/^"(a\.example:1|b\.example:2)"$/,
	'test-geo names a relay');

# IP changes: a peer registering its key from two addresses in turn (a
# fourth RegisterPk within 6 s would be refused before being counted)

is(cmd('ic'), "0\n", 'ip-changes empty');

for my $src (qw/ 127.0.0.21 127.0.0.22 127.0.0.21 /) {
	my $v = RustDesk::Client->udp(port(1), LocalAddr => $src);
	$v->send_msg(register_pk => { id => 'mover01', uuid => 'um',
		pk => 'm' x 32 });
	$v->recv_msg();
}

like(cmd('ic'), qr/^1\nmover01: \d+s \{"127\.0\.0\.22": 1, "127\.0\.0\.21": 1\}\n$/,
	'ip-changes list');
like(cmd('ic mover01'), qr/^1\n\d+s \{"127\.0\.0\.22": 1, "127\.0\.0\.21": 1\}\n$/,
	'ip-changes of one id');
cmd('ic mover01 -');
is(cmd('ic'), "0\n", 'ip-changes entry removed');

# loopback only; the NAT-test port gives it to loopback clients when asked

is(cmd("PROXY TCP4 127.0.0.9 127.0.0.1 1000 2000\r\naur", port(4)),
	"ALWAYS_USE_RELAY: true\n", 'console behind a proxy, loopback client');
is(cmd("PROXY TCP4 192.0.2.7 127.0.0.1 1000 2000\r\naur", port(4)), '',
	'console refused to a non-loopback client');

like($t->read_file('error.log'),
	qr/console refused to a non-loopback client.*client: 192\.0\.2\.7/,
	'refusal logged with the address');

# a PROXY header nobody trusted: its client is not the connection's (a
# proxy on this host would let every client it passes on in)

is(cmd("PROXY TCP4 192.0.2.7 127.0.0.1 1000 2000\r\naur", port(5)), '',
	'PROXY protocol without set_real_ip_from: refused');
ok($t->wait_log(qr/console refused to a client behind an untrusted PROXY/,
	1, 3), '... logged');

# what a client sends is logged escaped: no line of its own, no control

cmd("zz\x01\nrs \"x\\\x7f");
ok($t->wait_log(qr/console command "zz\\x01\\x0ars \\x22x\\x5c\\x7f"/, 1, 3),
	'an unknown command logged escaped');

is(cmd('aur', port(0)), "ALWAYS_USE_RELAY: true\n", 'console on NAT-test port');

sub cmd {
	my ($c, $p) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . ($p || port(2)))
		or die "connect: $!";
	$s->syswrite($c) if length $c;
	return read_all($s);
}

sub read_all {
	my ($s) = @_;
	return '' unless $s;
	my ($buf, $all) = ('', '');
	my $sel = IO::Select->new($s);
	while ($sel->can_read(3)) {
		my $n = $s->sysread($buf, 65536);
		last unless $n;
		$all .= $buf;
	}
	return $all;
}
