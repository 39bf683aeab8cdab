#!/usr/bin/perl

# A zone full of online peers refuses what it has no room for, whatever
# asks (a new peer, an IP blocker entry or its array of ids, a requester
# waiting for an answer, an IP change history), keeps serving what it
# holds and says so once; nothing crashes and nothing stalls.  Once the
# peers are offline (a reload shortens rustdesk_online_timeout, the zone
# is kept), each of those allocations gets room by evicting them, a few
# pages of cells at a time.

use warnings;
use strict;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw/ sleep /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;

my $t = Test::Nginx->new()->has()->plan(21);

write_conf('1h');
$t->run();

my %PK;                                 # id -> its key

###############################################################################

# 1. the zone filled with online peers, 9 from each address (so that each
# address's array of ids is full: the first RegisterPk only counts)

my ($ok, $full, $other) = (0, 0, 0);
my %udp;

SRC: for my $src (1 .. 250) {
	my $ip = "127.0.1.$src";
	$udp{$ip} = RustDesk::Client->udp(port(1), LocalAddr => $ip);

	for my $j (1 .. 9) {
		my $r = register($udp{$ip}, "full-$src-$j");
		$r == 0 ? $ok++ : $r == 7 ? $full++ : $other++;
		last SRC if $full >= 10;
	}
}

cmp_ok($ok, '>', 100, "zone filled with $ok online peers");
cmp_ok($full, '>=', 10, 'then new peers refused with SERVER_ERROR');
is($other, 0, 'no other answer');

# new addresses until the IP blocker has no room for another entry either

my $nips = ips();
my $grew = 0;

for my $n (1 .. 200) {
	my $u = RustDesk::Client->udp(port(1), LocalAddr => "127.0.2.$n");
	register($u, "blocker-$n");
	my $now = ips();
	last if $now == $nips;
	($nips, $grew) = ($now, $grew + 1);
}

note("$grew more IP blocker entries, $nips in all");

# each kind of allocation, in a zone full of online peers

is(register(RustDesk::Client->udp(port(1), LocalAddr => '127.0.3.1'),
	'new-ip'), 7, 'full: a new address and peer: SERVER_ERROR');
is(ips(), $nips, 'full: no IP blocker entry for it');

is(register($udp{'127.0.1.1'}, 'full-1-10'), 7,
	'full: a tenth id from an address: SERVER_ERROR');
like(cmd('ib 127.0.1.1'), qr/^\d+\n9\/\d+s 8\/\d+s\n$/,
	'full: its array of ids did not grow');

my $u = RustDesk::Client->udp(port(1), LocalAddr => '127.0.4.1');
$u->send_msg(register_pk => { id => 'full-1-2', uuid => 'uuid-full-1-2',
	pk => $PK{'full-1-2'} });
my (undef, $m) = $u->recv_msg();
ok($m && !($m->{result} // 0), 'full: a peer from another address: OK');
is(cmd('ic full-1-2'), "0\n", 'full: no room for its IP change history');

my $a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => 'full-1-1', licence_key => 'x' });
my ($type) = $udp{'127.0.1.1'}->recv_msg();
is($type, 'punch_hole', 'full: a punch request still reaches the peer');
$a->close();

$udp{'127.0.1.1'}->send_msg(register_peer => { id => 'full-1-1' });
($type, $m) = $udp{'127.0.1.1'}->recv_msg();
ok($type && $type eq 'register_peer_response' && !$m->{request_pk},
	'full: heartbeats still answered');

is($t->log_count(qr/no room in rustdesk zone "small"/), 1,
	'full: said once');

###############################################################################

# 2. the same peers offline: the zone kept across a reload that makes the
# online timeout short, and time for it to pass

write_conf('2s');
$t->reload();
sleep 2.2;

is(register(RustDesk::Client->udp(port(1), LocalAddr => '127.0.5.1'),
	'offline-new'), 0, 'offline peers evicted: a new peer and address');
like(cmd('ib 127.0.5.1'), qr/^\d+\n0\/\d+s 0\/\d+s\n$/,
	'... with an IP blocker entry');

is(register($udp{'127.0.1.1'}, 'full-1-11'), 0, 'another id from an address');
like(cmd('ib 127.0.1.1'), qr/^\d+\n10\/\d+s 9\/\d+s\n$/,
	'... its array of ids grew');

my $h = RustDesk::Client->udp(port(1), LocalAddr => '127.0.5.2');
is(register($h, 'moving'), 0, 'a new peer');
$h = RustDesk::Client->udp(port(1), LocalAddr => '127.0.5.3');
is(register($h, 'moving'), 0, '... from another address');
like(cmd('ic moving'), qr/^\d+\n\d+s \{"127\.0\.5\.3": 1\}\n$/,
	'... its IP change history kept');

# a requester waits for the answer, which reaches it

my $pb = RustDesk::Client->udp_peer(port(1), 'punched',
	LocalAddr => '127.0.5.4');
$a = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.0.2');
$a->send_msg(punch_hole_request => { id => 'punched', licence_key => 'x',
	nat_type => 1, version => '1.3.0' });
($type, $m) = $pb->{udp}->recv_msg();

my $bt = RustDesk::Client->tcp(port(1), LocalAddr => '127.0.5.4');
$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => 'punched', relay_server => 'r', nat_type => 2, version => '' });
($type) = $a->recv_msg();
is($type, 'punch_hole_response', 'a requester\'s answer');

is($t->log_count(qr/no room in rustdesk zone/), 1, 'no allocation failed since');

###############################################################################

sub write_conf {
	my ($online) = @_;

	$t->write_file_expand('nginx.conf', stream_conf([
		'rustdesk_key "";',
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_database off;',
		'rustdesk_zone small:64k;',
		"rustdesk_online_timeout $online;",
	], srv_rendezvous(1), srv_console(2)));
}

# RegisterPk of id from the socket u (a new key, or the one it has):
# the result, -1 for no answer.
sub register {
	my ($u, $id) = @_;
	$PK{$id} //= random_bytes(32);
	$u->send_msg(register_pk => { id => $id, uuid => "uuid-$id",
		pk => $PK{$id} });
	my ($type, $m) = $u->recv_msg();
	return -1 unless $type && $type eq 'register_pk_response';
	return $m->{result} // 0;
}

# The number of IP blocker entries.
sub ips {
	my ($n) = cmd('ib') =~ /^(\d+)/;
	return $n;
}

sub cmd {
	my ($c) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port(2))
		or die "connect: $!";
	$s->syswrite($c);

	my ($buf, $all) = ('', '');
	my $sel = IO::Select->new($s);
	while ($sel->can_read(3)) {
		my $n = $s->sysread($buf, 65536);
		last unless $n;
		$all .= $buf;
	}

	return $all;
}
