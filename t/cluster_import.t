#!/usr/bin/perl

# scripts/rustdesk-cluster-import: the ids of an existing db_v2.sqlite3
# bound to their uuids in the cluster's Redis (if bound to none yet, as
# hosts bind them), so that no host lets another uuid take them; an id
# bound already keeps its binding; their keys recorded, unless bound to
# another uuid or recorded already (a host's key is newer); a second run
# changes nothing.  Its errors:
# wrong usage (2), no Redis, a wrong password, not a database (1).
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;
use RustDesk::Redis;
use RustDesk::Cluster;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;

my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();
plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

$t->plan(18);

my $IMPORT = "$Test::Nginx::ROOT/scripts/rustdesk-cluster-import";
my $d = $t->testdir();

my $redis = RustDesk::Redis->start($d, port(9), requirepass => 's3cret');
my $url = 'redis://:s3cret@127.0.0.1:' . port(9);

# a database as rustdesk-server makes it, with five peers (one without
# a uuid) and binary uuids

my $db = "$d/db_v2.sqlite3";
sql($db, q{create table peer (guid blob primary key not null,
	id varchar(100) not null, uuid blob not null, pk blob not null,
	created_at datetime not null default(current_timestamp), user blob,
	status tinyint, note varchar(300), info text not null);
	insert into peer (guid, id, uuid, pk, info) values
		(X'01', 'import-1', CAST('uuid-one' AS BLOB), X'AA', '{}'),
		(X'02', 'import-2', X'00FF10', X'BB', '{}'),
		(X'03', 'import-3', X'', X'CC', '{}'),
		(X'04', 'import-4', CAST('uuid-four' AS BLOB), X'DD', '{}'),
		(X'05', 'import-5', CAST('uuid-five' AS BLOB), X'EE', '{}');});

# bound before: to another uuid; by a host, before keys were shared; by
# a host, with a newer key

$redis->cmd('SET', 'rustdesk:uuid:import-2', 'bound-before');
$redis->cmd('SET', 'rustdesk:uuid:import-4', 'uuid-four');
$redis->cmd('SET', 'rustdesk:uuid:import-5', 'uuid-five');
$redis->cmd('SET', 'rustdesk:pk:import-5', 'newer');

is(import($url, $db), "4 ids read, 1 bound, 3 bound already (left as they "
	. "were), key recorded for 2\n",
	'imported: one bound, three bound before kept, two keys');
is($redis->cmd('GET', 'rustdesk:uuid:import-1'), 'uuid-one', 'the uuid\'s bytes');
is($redis->cmd('GET', 'rustdesk:uuid:import-2'), 'bound-before',
	'a binding there before kept');
is($redis->cmd('GET', 'rustdesk:uuid:import-3'), undef, 'no uuid, no binding');
is($redis->cmd('GET', 'rustdesk:pk:import-1'), "\xAA", 'the key\'s bytes');
is($redis->cmd('GET', 'rustdesk:pk:import-2'), undef,
	'bound to another uuid: not its key');
is($redis->cmd('GET', 'rustdesk:pk:import-4'), "\xDD",
	'bound to its uuid, without a key: the key');
is($redis->cmd('GET', 'rustdesk:pk:import-5'), 'newer',
	'a key there before (a host\'s): kept');
is(import($url, $db), "4 ids read, 0 bound, 4 bound already (left as they "
	. "were), key recorded for 0\n", 'a second run changes nothing');

like(import("$url/2", $db, '--prefix', 'other:'), qr/ 4 bound,.* for 4$/,
	'another database and prefix');

# a host of the cluster refuses another uuid for an imported id

host_start($t, 1, $redis, keys => "$d/keys",
	directives => [ 'rustdesk_cluster_password s3cret;' ]);

is(register('import-1', 'uuid-other'), 2,
	'a host refuses another uuid for an imported id (UUID_MISMATCH)');
is($t->wait_log(qr/peer "import-1" is registered with another uuid in the cluster/),
	1, 'for the binding');
is(register('import-1', 'uuid-one'), 0, 'and takes its own (OK)');
Test::Nginx::wait_until(sub {
	($redis->cmd('GET', 'rustdesk:pk:import-1') // '') eq 'K' x 32 }, 3);
is($redis->cmd('GET', 'rustdesk:pk:import-1'), 'K' x 32,
	'with its key now, in the cluster');

# the errors

is(import('http://x', $db), "rustdesk-cluster-import: \"http://x\" is not a "
	. "redis://[[user]:password\@]host[:port][/db] or "
	. "redis-sentinel://host[:port][,...]/name[/db] URL\n[1]",
	'not a redis URL');
is(import('redis://:wrong@127.0.0.1:' . port(9), $db),
	"rustdesk-cluster-import: redis refused the password: -WRONGPASS "
	. "invalid username-password pair or user is disabled.\n[1]",
	'a wrong password');
like(import($url, "$d/nothing"), qr/no database .*\n\[1\]$/, 'no file');
like(import($url), qr/^usage: .*\[2\]$/s, 'wrong usage');

###############################################################################

# RegisterPk over UDP on host 1: the result's number.
sub register {
	my ($id, $uuid) = @_;
	my $c = RustDesk::Client->udp(port(1), PeerHost => '127.0.0.1');
	$c->send_msg(register_pk => { id => $id, uuid => $uuid,
		pk => 'K' x 32 });
	my ($type, $m) = $c->recv_msg(3);
	return ($type // '') eq 'register_pk_response' ? $m->{result} // 0
		: 'no answer';
}

# The script's output (stdout and stderr), and "[status]" when not 0.
sub import {
	my (@a) = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!\n";

	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT;
		exec($IMPORT, @a) or POSIX::_exit(127);
	}

	local $/;
	my $out = <$fh> // '';
	close $fh;

	return $? >> 8 ? $out . '[' . ($? >> 8) . ']' : $out;
}
