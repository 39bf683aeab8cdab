#!/usr/bin/perl

# A full zone: offline peers (here: loaded from the database) make room for
# new registrations and stay in the database; a zone full of online peers
# refuses new ones with SERVER_ERROR and says so once; nothing crashes.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client;

my $t = Test::Nginx->new()->has()->plan(8);
my $d = $t->testdir();

# a rustdesk-server database with 300 peers, made before nginx starts

mkdir "$d/keys", 0700;
my $sql = <<'EOF';
create table if not exists peer (
    guid blob primary key not null, id varchar(100) not null,
    uuid blob not null, pk blob not null,
    created_at datetime not null default(current_timestamp),
    user blob, status tinyint, note varchar(300), info text not null
) without rowid;
create unique index if not exists index_peer_id on peer (id);
EOF
$sql .= "begin;\n";
$sql .= sprintf("insert into peer (guid, id, uuid, pk, info) values "
	. "(x'%032x', 'stored%03d', x'%064x', x'%064x', '{\"ip\":\"10.0.0.1\"}');\n",
	$_, $_, $_, $_) for 1 .. 300;
$sql .= "commit;\n";
$t->write_file('init.sql', $sql);
system("sqlite3 $d/keys/db_v2.sqlite3 < $d/init.sql") == 0 or die "sqlite3";

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key "";',
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_zone small:64k;',
], srv_rendezvous(1)));

$t->run();

# every stored peer is known (OFFLINE), loaded into memory as room allows

my %seen;
for my $i (1 .. 300) {
	$seen{punch(sprintf('stored%03d', $i))}++;
}

is(join(',', map { "$_=$seen{$_}" } sort keys %seen), 'offline=300',
	'stored peers known: offline');

# online peers take the room of offline ones, until only online ones are left

my ($ok, $full, $other, $n) = (0, 0, 0, 0);

for my $src (1 .. 40) {
	my $u = RustDesk::Client->udp(port(1), LocalAddr => "127.0.1.$src");
	for (1 .. 25) {
		$n++;
		$u->send_msg(register_pk => { id => sprintf('online%04d', $n),
			uuid => 'u' . $n, pk => 'k' x 32 });
		my (undef, $m) = $u->recv_msg();
		my $r = $m ? ($m->{result} // 0) : -1;
		$r == 0 ? $ok++ : $r == 7 ? $full++ : $other++;
	}
	last if $full > 20;
}

cmp_ok($ok, '>', 100, "online peers registered ($ok)");
cmp_ok($full, '>', 0, "then refused with SERVER_ERROR ($full)");
is($other, 0, 'no other answers');

my @warn = $t->read_file('error.log') =~ /no room in rustdesk zone "small": it holds \d+ peers, all online/g;
cmp_ok(scalar @warn, '>=', 1, 'zone full logged');
cmp_ok(scalar @warn, '<=', 2, 'logged once (per worker at most)');

# the evicted offline peers are still in the database

is(punch('stored001'), 'offline', 'evicted peer still known');

# registered peers are online

my $u = RustDesk::Client->udp(port(1), LocalAddr => '127.0.1.1');
$u->send_msg(register_peer => { id => 'online0001' });
my (undef, $m) = $u->recv_msg();
ok($m && !$m->{request_pk}, 'registered peer kept');

sub punch {
	my ($id) = @_;
	my $c = RustDesk::Client->tcp(port(1));
	$c->send_msg(punch_hole_request => { id => $id, licence_key => 'x' });
	my ($type, $m) = $c->recv_msg();
	return 'none' unless $type && $type eq 'punch_hole_response';
	my $f = $m->{failure} // 0;
	return $f == 2 ? 'offline' : $f == 0 ? 'unknown' : "failure $f";
}
