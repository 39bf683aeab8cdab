# ngx_rustdesk: generates the protobuf-c code from common/rendezvous.proto.

cat << END                                            >> $NGX_MAKEFILE

$ngx_rustdesk_proto_dir/rendezvous.pb-c.h: $ngx_rustdesk_root/common/rendezvous.proto
	protoc-c --c_out=$ngx_rustdesk_proto_dir -I $ngx_rustdesk_root/common \\
		$ngx_rustdesk_root/common/rendezvous.proto

$ngx_rustdesk_proto_dir/rendezvous.pb-c.c: $ngx_rustdesk_proto_dir/rendezvous.pb-c.h

END
