#!/usr/bin/perl

# The Perl protocol client checked against bytes worked out by hand from
# PROTOCOL.md, so that the tests of the server stand on known ground.

use warnings;
use strict;

use Test::More tests => 16;

use lib 't/lib';
use RustDesk::Client qw/ frame_header frame unframe encode_msg decode_msg
	mangle demangle /;

# section 2: header sizes at the boundaries

is(unpack('H*', frame_header(0x3F)), 'fc', 'header 0x3F');
is(unpack('H*', frame_header(0x40)), '0101', 'header 0x40');
is(unpack('H*', frame_header(0x3FFF)), 'fdff', 'header 0x3FFF');
is(unpack('H*', frame_header(0x4000)), '020001', 'header 0x4000');
is(unpack('H*', frame_header(0x3FFFFF)), 'feffff', 'header 0x3FFFFF');
is(unpack('H*', frame_header(0x400000)), '03000001', 'header 0x400000');

my $buf = frame('a' x 0x40) . frame('') . substr(frame('xyz'), 0, 2);
my @p = unframe(\$buf);
is(scalar @p, 2, 'two whole frames');
is(length $buf, 2, 'partial frame left');

# section 3: RendezvousMessage field numbers and types

is(unpack('H*', encode_msg(register_peer => { id => 'abc', serial => 3 })),
	'32070a036162631003', 'RegisterPeer is field 6');
is(unpack('H*', encode_msg(test_nat_response => { port => 300 })),
	'aa010308ac02', 'TestNatResponse is field 21');

my ($type, $m) = decode_msg(pack('H*', 'a20102' . '0805' . 'f8ff0300'));
is($type, 'test_nat_request', 'decode, unknown field skipped');
is($m->{serial}, 5, 'decoded serial');

# section 4: AddrMangle vectors computed by hand

is(unpack('H*', mangle('1.2.3.4', 5678, 123456789)),
	'43e32a9ab70e2c9ebd16', 'mangle 1.2.3.4:5678');
is(unpack('H*', mangle('192.168.1.200', 65535, 0xFFFFFFFF)),
	'feffffffffff7f51039003', 'mangle at tm 2^32-1');
is(join(':', demangle(pack('H*', '43e32a9ab70e2c9ebd16'))), '1.2.3.4:5678',
	'demangle');
is(join(':', demangle('x' x 17)), '0.0.0.0:0', 'bad length unspecified');
