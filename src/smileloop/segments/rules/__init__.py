"""Segment rule trees: the field registry (`fields`), the validator (`validation`) and the compiler to one
SQL query over customers (`compiler`). Other apps use them through `smileloop.segments.selectors`."""
