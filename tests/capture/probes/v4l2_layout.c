/* Prints, as JSON, the layouts/ioctl numbers/constants capture/v4l2.py hard-codes. */
#include <stdio.h>
#include <stddef.h>
#include <linux/videodev2.h>

#define S(t) printf("\"sizeof %s\": %zu,\n", #t, sizeof(struct t))
#define O(t, f) printf("\"offsetof %s.%s\": %zu,\n", #t, #f, offsetof(struct t, f))
#define C(c) printf("\"%s\": %llu,\n", #c, (unsigned long long)(c))

int main(void) {
    printf("{\n");
    S(v4l2_buffer); O(v4l2_buffer, index); O(v4l2_buffer, type); O(v4l2_buffer, bytesused);
    O(v4l2_buffer, flags); O(v4l2_buffer, field); O(v4l2_buffer, timestamp); O(v4l2_buffer, timecode);
    O(v4l2_buffer, sequence); O(v4l2_buffer, memory); O(v4l2_buffer, m); O(v4l2_buffer, length);
    O(v4l2_buffer, reserved2); O(v4l2_buffer, request_fd);
    S(v4l2_requestbuffers); O(v4l2_requestbuffers, count); O(v4l2_requestbuffers, type);
    O(v4l2_requestbuffers, memory); O(v4l2_requestbuffers, capabilities); O(v4l2_requestbuffers, flags);
    S(v4l2_format); O(v4l2_format, type); O(v4l2_format, fmt);
    S(v4l2_pix_format); O(v4l2_pix_format, pixelformat); O(v4l2_pix_format, sizeimage);
    O(v4l2_pix_format, xfer_func);
    S(v4l2_streamparm); O(v4l2_streamparm, parm);
    S(v4l2_captureparm); O(v4l2_captureparm, timeperframe);
    S(v4l2_capability); O(v4l2_capability, capabilities); O(v4l2_capability, device_caps);
    S(v4l2_timecode);
    C(VIDIOC_QUERYCAP); C(VIDIOC_G_FMT); C(VIDIOC_S_FMT); C(VIDIOC_REQBUFS); C(VIDIOC_QUERYBUF);
    C(VIDIOC_QBUF); C(VIDIOC_DQBUF); C(VIDIOC_STREAMON); C(VIDIOC_STREAMOFF); C(VIDIOC_G_PARM);
    C(V4L2_BUF_TYPE_VIDEO_CAPTURE); C(V4L2_MEMORY_MMAP); C(V4L2_FIELD_ANY); C(V4L2_FIELD_NONE);
    C(V4L2_CAP_VIDEO_CAPTURE); C(V4L2_CAP_STREAMING);
    C(V4L2_BUF_FLAG_MAPPED); C(V4L2_BUF_FLAG_QUEUED); C(V4L2_BUF_FLAG_DONE); C(V4L2_BUF_FLAG_ERROR);
    C(V4L2_BUF_FLAG_TIMESTAMP_MASK); C(V4L2_BUF_FLAG_TIMESTAMP_UNKNOWN);
    C(V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC); C(V4L2_BUF_FLAG_TIMESTAMP_COPY);
    C(V4L2_BUF_FLAG_TSTAMP_SRC_MASK); C(V4L2_BUF_FLAG_TSTAMP_SRC_EOF); C(V4L2_BUF_FLAG_TSTAMP_SRC_SOE);
    C(V4L2_PIX_FMT_RGB24);
    printf("\"end\": 0\n}\n");
    return 0;
}
