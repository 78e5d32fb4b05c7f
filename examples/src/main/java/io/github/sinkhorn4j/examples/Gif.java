package io.github.sinkhorn4j.examples;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.ImageOutputStream;

/** Animated GIFs with the JDK's GIF writer: frame delays and the NETSCAPE2.0 extension that makes viewers loop. */
final class Gif {
    private static final String FORMAT = "javax_imageio_gif_image_1.0";

    private Gif() {}

    /** Writes the frames (all of one size) looping forever, {@code delayMs} apart, the last shown {@code lastDelayMs}. */
    static void write(Path file, List<BufferedImage> frames, int delayMs, int lastDelayMs) {
        ImageWriter writer = ImageIO.getImageWritersByFormatName("gif").next();
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            Files.deleteIfExists(file);
            try (ImageOutputStream out = ImageIO.createImageOutputStream(file.toFile())) {
                writer.setOutput(out);
                writer.prepareWriteSequence(null);
                for (int i = 0; i < frames.size(); i++) {
                    BufferedImage frame = frames.get(i);
                    IIOMetadata metadata = writer.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(frame), null);
                    describe(metadata, i == frames.size() - 1 ? lastDelayMs : delayMs, i == 0);
                    writer.writeToSequence(new IIOImage(frame, null, metadata), null);
                }
                writer.endWriteSequence();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            writer.dispose();
        }
    }

    /** The frame's delay (in hundredths of a second in the file) and, on the first frame, the endless loop. */
    private static void describe(IIOMetadata metadata, int delayMs, boolean first) throws IOException {
        IIOMetadataNode root = (IIOMetadataNode) metadata.getAsTree(FORMAT);
        IIOMetadataNode control = child(root, "GraphicControlExtension");
        control.setAttribute("disposalMethod", "none");
        control.setAttribute("userInputFlag", "FALSE");
        control.setAttribute("transparentColorFlag", "FALSE");
        control.setAttribute("delayTime", Integer.toString(Math.max(1, delayMs / 10)));
        control.setAttribute("transparentColorIndex", "0");
        if (first) {
            IIOMetadataNode loop = new IIOMetadataNode("ApplicationExtension");
            loop.setAttribute("applicationID", "NETSCAPE");
            loop.setAttribute("authenticationCode", "2.0");
            loop.setUserObject(new byte[] {1, 0, 0});  // sub-block 1, loop count 0 (little-endian): forever
            child(root, "ApplicationExtensions").appendChild(loop);
        }
        metadata.setFromTree(FORMAT, root);
    }

    private static IIOMetadataNode child(IIOMetadataNode parent, String name) {
        for (int i = 0; i < parent.getLength(); i++) {
            if (parent.item(i).getNodeName().equals(name)) return (IIOMetadataNode) parent.item(i);
        }
        IIOMetadataNode node = new IIOMetadataNode(name);
        parent.appendChild(node);
        return node;
    }
}
