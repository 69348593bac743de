/* Prints, as JSON, the sizes/offsets/constants capture/pipewire.py hard-codes. */
#include <stdio.h>
#include <stddef.h>
#include <pipewire/pipewire.h>
#include <spa/param/video/format-utils.h>
#include <spa/param/audio/format-utils.h>
#include <spa/param/param.h>
#include <spa/buffer/meta.h>
#include <spa/node/io.h>

#define S(t) printf("\"sizeof %s\": %zu,\n", #t, sizeof(struct t))
#define O(t, f) printf("\"offsetof %s.%s\": %zu,\n", #t, #f, offsetof(struct t, f))
#define C(c) printf("\"%s\": %lld,\n", #c, (long long)(c))

int main(void) {
    printf("{\n");
    S(spa_meta); O(spa_meta, type); O(spa_meta, size); O(spa_meta, data);
    S(spa_chunk); O(spa_chunk, offset); O(spa_chunk, size); O(spa_chunk, stride); O(spa_chunk, flags);
    S(spa_data); O(spa_data, type); O(spa_data, flags); O(spa_data, fd); O(spa_data, mapoffset);
    O(spa_data, maxsize); O(spa_data, data); O(spa_data, chunk);
    S(spa_buffer); O(spa_buffer, n_metas); O(spa_buffer, n_datas); O(spa_buffer, metas); O(spa_buffer, datas);
    S(spa_meta_header); O(spa_meta_header, flags); O(spa_meta_header, offset); O(spa_meta_header, pts);
    O(spa_meta_header, dts_offset); O(spa_meta_header, seq);
    S(pw_buffer); O(pw_buffer, buffer); O(pw_buffer, user_data); O(pw_buffer, size); O(pw_buffer, requested);
    S(pw_time); O(pw_time, now); O(pw_time, rate); O(pw_time, ticks); O(pw_time, delay);
    O(pw_time, queued); O(pw_time, buffered); O(pw_time, queued_buffers); O(pw_time, avail_buffers);
    S(spa_io_clock); O(spa_io_clock, flags); O(spa_io_clock, id); O(spa_io_clock, name);
    O(spa_io_clock, nsec); O(spa_io_clock, rate); O(spa_io_clock, position); O(spa_io_clock, duration);
    O(spa_io_clock, delay); O(spa_io_clock, rate_diff); O(spa_io_clock, next_nsec);
    O(spa_io_position, clock);
    S(pw_stream_events); O(pw_stream_events, version); O(pw_stream_events, destroy);
    O(pw_stream_events, state_changed); O(pw_stream_events, control_info); O(pw_stream_events, io_changed);
    O(pw_stream_events, param_changed); O(pw_stream_events, add_buffer); O(pw_stream_events, remove_buffer);
    O(pw_stream_events, process); O(pw_stream_events, drained); O(pw_stream_events, command);
    O(pw_stream_events, trigger_done);
    C(PW_VERSION_STREAM_EVENTS);
    C(SPA_TYPE_Id); C(SPA_TYPE_Int); C(SPA_TYPE_Rectangle); C(SPA_TYPE_Fraction); C(SPA_TYPE_Choice);
    C(SPA_TYPE_Object); C(SPA_TYPE_OBJECT_Format); C(SPA_TYPE_OBJECT_ParamMeta);
    C(SPA_PARAM_EnumFormat); C(SPA_PARAM_Format); C(SPA_PARAM_Meta);
    C(SPA_FORMAT_mediaType); C(SPA_FORMAT_mediaSubtype); C(SPA_FORMAT_VIDEO_format);
    C(SPA_FORMAT_VIDEO_size); C(SPA_FORMAT_VIDEO_framerate); C(SPA_FORMAT_AUDIO_format);
    C(SPA_FORMAT_AUDIO_rate); C(SPA_FORMAT_AUDIO_channels);
    C(SPA_MEDIA_TYPE_audio); C(SPA_MEDIA_TYPE_video); C(SPA_MEDIA_SUBTYPE_raw);
    C(SPA_VIDEO_FORMAT_RGB); C(SPA_AUDIO_FORMAT_F32); C(SPA_AUDIO_FORMAT_S16);
    C(SPA_PARAM_META_type); C(SPA_PARAM_META_size); C(SPA_META_Header);
    C(SPA_CHOICE_None); C(SPA_CHOICE_Range); C(SPA_CHOICE_Enum);
    C(PW_DIRECTION_INPUT); C(PW_DIRECTION_OUTPUT); C(PW_ID_ANY); C(SPA_IO_Position);
    C(PW_STREAM_FLAG_AUTOCONNECT); C(PW_STREAM_FLAG_MAP_BUFFERS); C(PW_STREAM_FLAG_DRIVER);
    C(PW_STREAM_STATE_ERROR); C(PW_STREAM_STATE_UNCONNECTED); C(PW_STREAM_STATE_CONNECTING);
    C(PW_STREAM_STATE_PAUSED); C(PW_STREAM_STATE_STREAMING);
    printf("\"end\": 0\n}\n");
    return 0;
}
