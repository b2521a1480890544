namespace VaeResearch.IO;

/// <summary>Tiles equally sized greyscale images into one grid image.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Places <paramref name="count"/> images [count, height, width] row by row into a grid with
    /// <paramref name="columns"/> columns and <paramref name="padding"/> pixels of <paramref name="background"/>
    /// between and around them. Returns the grid's pixels [gridHeight, gridWidth] and its size.
    /// </summary>
    public static (float[] Pixels, int Width, int Height) Tile(ReadOnlySpan<float> images, int count, int height, int width,
        int columns, int padding = 1, float background = 0.5f)
    {
        if (count < 1 || height < 1 || width < 1 || columns < 1)
            throw new ArgumentException($"a grid needs positive sizes, got {count} images of {height} x {width} in {columns} columns");
        if (images.Length < count * height * width)
            throw new ArgumentException($"{images.Length} values cannot hold {count} images of {height} x {width}");
        int rows = (count + columns - 1) / columns;
        int gridW = columns * (width + padding) + padding;
        int gridH = rows * (height + padding) + padding;
        var grid = new float[gridW * gridH];
        Array.Fill(grid, background);
        for (int i = 0; i < count; i++)
        {
            int top = padding + (i / columns) * (height + padding);
            int left = padding + (i % columns) * (width + padding);
            for (int y = 0; y < height; y++)
                images.Slice((i * height + y) * width, width).CopyTo(grid.AsSpan((top + y) * gridW + left, width));
        }
        return (grid, gridW, gridH);
    }

    /// <summary>Columns for a near-square grid of <paramref name="count"/> images.</summary>
    public static int SquareColumns(int count) => Math.Max(1, (int)Math.Ceiling(Math.Sqrt(count)));

    /// <summary>Tiles MNIST-sized images (28 x 28) into a near-square grid and writes it as a PNG.</summary>
    public static void SavePng(string path, ReadOnlySpan<float> images, int count, int height = 28, int width = 28, int? columns = null)
    {
        var (pixels, w, h) = Tile(images, count, height, width, columns ?? SquareColumns(count));
        Png.SaveGrey(path, pixels, w, h);
    }
}
